package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The compose stack cannot run without a container engine, so its wiring is
// checked here: every file it mounts exists (or is made by `make
// compose-secrets`), every program it runs is one of ours, and Prometheus
// and Alertmanager point at the ports the exporter and remediator listen on.
func TestComposeStackWiring(t *testing.T) {
	root, err := findRoot()
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Build       string   `yaml:"build"`
			Image       string   `yaml:"image"`
			Command     []string `yaml:"command"`
			Volumes     []string `yaml:"volumes"`
			NetworkMode string   `yaml:"network_mode"`
		} `yaml:"services"`
	}
	b, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatal(err)
	}
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"lab", "exporter", "remediator", "remediator-2", "etcd", "prometheus", "alertmanager", "grafana"} {
		if _, ok := compose.Services[want]; !ok {
			t.Errorf("service %s missing", want)
		}
	}
	listen := map[string]string{}
	var remediators []string // each replica's listen address
	for name, svc := range compose.Services {
		for _, v := range svc.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if !strings.HasPrefix(src, "./") {
				continue // a named volume
			}
			if _, err := os.Stat(filepath.Join(root, src)); err != nil && !strings.Contains(string(makefile), strings.TrimPrefix(src, "./")) {
				t.Errorf("service %s mounts %s, which neither exists nor is made by the Makefile", name, src)
			}
		}
		if svc.Build == "" {
			continue
		}
		if len(svc.Command) == 0 {
			t.Errorf("service %s has no command", name)
			continue
		}
		if _, err := os.Stat(filepath.Join(root, "cmd", svc.Command[0])); err != nil {
			t.Errorf("service %s runs %s, which is not a program in cmd/", name, svc.Command[0])
		}
		var etcdEndpoints string
		for _, arg := range svc.Command[1:] {
			if addr, ok := strings.CutPrefix(arg, "--web.listen-address="); ok {
				listen[svc.Command[0]] = addr
				if svc.Command[0] == "xsha-remediator" {
					remediators = append(remediators, addr)
				}
			}
			if eps, ok := strings.CutPrefix(arg, "--journal.etcd.endpoints="); ok {
				etcdEndpoints = eps
			}
		}
		// Replicas share their journal: each must use the etcd service.
		if svc.Command[0] == "xsha-remediator" && etcdEndpoints != "http://etcd:2379" {
			t.Errorf("remediator service %s does not keep its journal in the etcd service (--journal.etcd.endpoints=%q)", name, etcdEndpoints)
		}
		if name != "lab" && svc.NetworkMode != "service:lab" {
			t.Errorf("service %s must share the lab's network namespace to reach the simulated hosts", name)
		}
	}
	prom, err := os.ReadFile(filepath.Join(root, "deploy", "prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	am, err := os.ReadFile(filepath.Join(root, "deploy", "alertmanager", "alertmanager.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for prog, addr := range map[string]string{"xsha-exporter": listen["xsha-exporter"], "xsha-remediator": listen["xsha-remediator"]} {
		if addr == "" {
			t.Errorf("%s has no --web.listen-address in the compose file", prog)
			continue
		}
		if !strings.Contains(string(prom), "lab"+addr) {
			t.Errorf("Prometheus does not scrape %s at lab%s", prog, addr)
		}
	}
	if len(remediators) < 2 {
		t.Errorf("remediator replicas listen on %v, want two", remediators)
	}
	for _, addr := range remediators {
		if !strings.Contains(string(am), "http://lab"+addr+"/webhook") {
			t.Errorf("Alertmanager does not send to the remediator replica's webhook at lab%s", addr)
		}
		if !strings.Contains(string(prom), "lab"+addr) {
			t.Errorf("Prometheus does not scrape the remediator replica at lab%s", addr)
		}
	}
	if etcd := compose.Services["etcd"]; !strings.Contains(etcd.Image, "etcd") {
		t.Errorf("the etcd service runs %q", etcd.Image)
	}
}
