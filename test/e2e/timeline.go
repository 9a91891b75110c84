package e2e

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Timeline prints what happens on the stack, one line per change, in the
// style of the seed's table: minutes and seconds since a start time, scaled
// back to real XenServer time.
type Timeline struct {
	s     *Stack
	out   io.Writer
	scale float64

	mu    sync.Mutex
	start time.Time
	lines []string
}

// NewTimeline returns a timeline of s written to out. scale is the lab's
// time scale, used to show how long each step would take on real pools.
func NewTimeline(s *Stack, out io.Writer, scale float64) *Timeline {
	return &Timeline{s: s, out: out, scale: scale, start: time.Now()}
}

// Reset makes now the timeline's 00:00.
func (tl *Timeline) Reset() {
	tl.mu.Lock()
	tl.start = time.Now()
	tl.mu.Unlock()
}

// Printf adds a line at the current time.
func (tl *Timeline) Printf(format string, args ...any) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	d := time.Duration(float64(time.Since(tl.start)) / tl.scale)
	line := fmt.Sprintf("%02d:%02d  %s", int(d.Minutes()), int(d.Seconds())%60, fmt.Sprintf(format, args...))
	tl.lines = append(tl.lines, line)
	fmt.Fprintln(tl.out, line)
}

// Lines returns every line printed so far.
func (tl *Timeline) Lines() []string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return append([]string(nil), tl.lines...)
}

// Watch polls the lab, Prometheus and the remediator until ctx ends and
// prints each change it sees.
func (tl *Timeline) Watch(ctx context.Context) {
	seen := map[string]string{}
	// note prints line when key takes a new value. The first value of a key
	// is printed only when loud: the starting state of every host would
	// drown the story.
	note := func(key, value, line string, loud bool) {
		old, known := seen[key]
		if known && old == value {
			return
		}
		seen[key] = value
		if known || loud {
			tl.Printf("%s", line)
		}
	}
	for {
		if st, err := tl.s.State(ctx); err == nil {
			for _, p := range st.Pools {
				note("master/"+p.Name, p.Master, fmt.Sprintf("%s: pool master is %s", p.Name, orNone(p.Master)), true)
				note("ha/"+p.Name, strconv.FormatBool(p.HAEnabled), fmt.Sprintf("%s: pool HA %s", p.Name, onOff(p.HAEnabled)), true)
				for _, h := range p.Hosts {
					note("role/"+h.Name, h.Role, fmt.Sprintf("%s: host %s is %s", p.Name, h.Name, h.Role), false)
				}
			}
			for _, h := range st.CloudStack.Hosts {
				note("cs/"+h.Name, h.State, fmt.Sprintf("CloudStack: host %s %s", h.Name, h.State), false)
			}
			running := map[bool]int{}
			total := map[bool]int{}
			for _, vm := range st.CloudStack.VMs {
				total[vm.HAEnable]++
				if vm.State == "Running" {
					running[vm.HAEnable]++
				}
			}
			note("cs/vms", fmt.Sprint(running), fmt.Sprintf("CloudStack: %d/%d Offer-HA VMs and %d/%d other VMs running",
				running[true], total[true], running[false], total[false]), true)
		}
		if alerts, err := tl.s.FiringAlerts(ctx); err == nil {
			now := map[string]bool{}
			for _, a := range alerts {
				now[alertKey(a)] = true
			}
			for k := range now {
				note("alert/"+k, "firing", "ALERT firing: "+k, true)
			}
			for k, v := range seen {
				if strings.HasPrefix(k, "alert/") && v == "firing" && !now[strings.TrimPrefix(k, "alert/")] {
					note(k, "resolved", "alert resolved: "+strings.TrimPrefix(k, "alert/"), true)
				}
			}
		}
		if acts, err := tl.s.Actions(ctx); err == nil {
			for _, a := range acts {
				target := a.Pool
				if a.Host != "" {
					target += "/" + a.Host
				}
				line := fmt.Sprintf("xsha-remediator: %s on %s %s", a.Action, target, a.State)
				if a.Reason != "" && a.State != "running" && a.State != "pending" {
					line += " (" + a.Reason + ")"
				}
				note(fmt.Sprintf("action/%d", a.ID), a.State, line, true)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func alertKey(labels map[string]string) string {
	var extra []string
	for _, k := range []string{"pool", "host", "reason", "severity"} {
		if v := labels[k]; v != "" {
			extra = append(extra, k+"="+v)
		}
	}
	return labels["alertname"] + "{" + strings.Join(extra, ",") + "}"
}

func onOff(b bool) string {
	if b {
		return "enabled"
	}
	return "disabled"
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
