// Package cloudstack polls the Apache CloudStack management server that
// manages the XenServer pools and publishes immutable snapshots of what xsha
// cares about: the effective alert.wait, the XenServer hosts with their
// state and resource state, the guest VMs per cluster and whether their
// offering offers HA, and the primary storage pools.
//
// It talks to CloudStack through cloudstack-go with signed GET requests.
// A poll succeeds or fails as a whole; a scrape reads the last snapshot and
// never waits on CloudStack.
package cloudstack
