package main

import (
	"fmt"
	"io"

	"xsha/config"
	"xsha/remediator"
)

// check validates the configuration file, the policy file or both, as
// --config.check and --policy.check ask, and returns the exit code: 0 with
// one line "ok" on out when every file checked is good, 1 with what is
// wrong on errOut otherwise. With both flags the policy's pools are also
// checked against the configuration, as at start.
func check(out, errOut io.Writer, configFile, policyFile string, checkConfig, checkPolicy bool) int {
	var cfg *config.Config
	failed := false
	if checkConfig {
		var err error
		if cfg, err = config.Load(configFile); err != nil {
			fmt.Fprintf(errOut, "%s: %v\n", configFile, err)
			failed = true
		}
	}
	if checkPolicy {
		p, err := remediator.LoadPolicy(policyFile)
		if err == nil && cfg != nil {
			err = p.CheckPools(cfg)
		}
		if err != nil {
			fmt.Fprintf(errOut, "%s: %v\n", policyFile, err)
			failed = true
		}
	}
	if failed {
		return 1
	}
	fmt.Fprintln(out, "ok")
	return 0
}
