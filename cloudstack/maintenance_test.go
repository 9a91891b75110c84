package cloudstack

import (
	"context"
	"testing"
	"time"

	"xsha/sim/scenario"
)

// runLab runs the simulated CloudStack's state model until the test ends.
func runLab(t *testing.T, edit func(*scenario.Scenario)) (*HostMaintenance, func(string, bool) error) {
	t.Helper()
	srv, ts, sc := startLab(t, func(sc *scenario.Scenario) {
		sc.TimeScale = 0.01
		if edit != nil {
			edit(sc)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	m, err := NewHostMaintenance(csConfig(ts.URL, sc))
	if err != nil {
		t.Fatal(err)
	}
	return m, srv.SetMigrationFault
}

// waitResource waits until the host's resource state and state are the
// wanted ones ("" = any) and returns the host.
func waitResource(t *testing.T, m *HostMaintenance, name, resource, state string) Host {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		h, err := m.Host(context.Background(), "cluster-a", name)
		if err == nil && h.ResourceState == resource && (state == "" || h.State == state) {
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never reached %s/%s: %+v %v", name, resource, state, h, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHostMaintenanceRoundTrip puts a host with guests into CloudStack
// maintenance and back, as a workflow does: the async jobs are accepted
// with a job id, the host goes to Maintenance and back to Enabled and Up.
func TestHostMaintenanceRoundTrip(t *testing.T) {
	m, _ := runLab(t, nil)
	ctx := context.Background()
	h, err := m.Host(ctx, "cluster-a", "xs-a1")
	if err != nil || h.ResourceState != ResourceEnabled || h.State != "Up" {
		t.Fatalf("before: %+v %v", h, err)
	}
	if _, err := m.Host(ctx, "cluster-b", "xs-a1"); err == nil {
		t.Error("found xs-a1 in cluster-b")
	}
	if _, err := m.Host(ctx, "cluster-a", "xs-a"); err == nil {
		t.Error("a name filter substring matched a host")
	}
	job, err := m.Prepare(ctx, h.ID)
	if err != nil || job == "" {
		t.Fatalf("prepare: job %q, %v", job, err)
	}
	waitResource(t, m, "xs-a1", ResourceMaintenance, "")
	job, err = m.Cancel(ctx, h.ID)
	if err != nil || job == "" {
		t.Fatalf("cancel: job %q, %v", job, err)
	}
	waitResource(t, m, "xs-a1", ResourceEnabled, "Up")
}

// TestHostMaintenanceError shows the state a workflow stops on: a guest
// that cannot move sends the host to ErrorInPrepareForMaintenance.
func TestHostMaintenanceError(t *testing.T) {
	m, fault := runLab(t, nil)
	if err := fault("i-2-101-VM", true); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	h, err := m.Host(ctx, "cluster-a", "xs-a1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Prepare(ctx, h.ID); err != nil {
		t.Fatal(err)
	}
	waitResource(t, m, "xs-a1", ResourceErrorInPrepareForMaintenance, "")
}
