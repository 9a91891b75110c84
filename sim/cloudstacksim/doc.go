// Package cloudstacksim simulates the parts of an Apache CloudStack management
// server API that xsha uses, for the lab: request signing, error and response
// shapes as the real server produces them, and a host and VM HA model that
// follows the simulated XenServer pools.
//
// # API
//
// A Server is an http.Handler for the API endpoint (conventionally
// /client/api; any path is served). Requests are verified the way
// ApiServer.verifyRequest does it: the decoded parameter values are
// re-encoded as java.net.URLEncoder would, "+" is replaced by "%20", the
// pairs are sorted by name, the string is lower-cased and signed with
// HMAC-SHA1; signatureversion=3 requires an "expires" that has not passed.
// GET and POST forms are accepted. Failures answer HTTP 401 with the real
// body; unknown commands use the "errorresponse" key; bad parameters answer
// 431 with cserrorcode 9999. Responses have a single top-level key
// "<command in lower case>response", empty lists are "{}", null fields are
// left out and dates use the layout "yyyy-MM-dd'T'HH:mm:ssZ".
//
// Commands: listConfigurations, updateConfiguration, listHosts,
// listClusters, listStoragePools, listVirtualMachines, listServiceOfferings,
// the asynchronous prepareHostForMaintenance, cancelHostMaintenance and
// reconnectHost, and queryAsyncJobResult.
//
// New builds a Server from Options; FromScenario derives them from a lab
// scenario.
//
// # State model
//
// Run polls an Infra, the XenServer side as CloudStack's agents see it, on
// every tick. Durations are simulated time; Options.Speedup compresses them.
//
//   - Every ping interval each host's agent is pinged; a ping succeeds when
//     the host is Reachable (CloudStack reaches a XenServer host through its
//     pool master, so a pool without a master cuts every host of the pool).
//   - When a host has not answered for the ping timeout it is investigated
//     as XenServerInvestigator does: another Up, reachable host of the same
//     cluster checks the suspect's SR heartbeat. A heartbeat older than the
//     heartbeat timeout means Down; a live heartbeat, or no neighbour to ask,
//     leaves the state undetermined.
//   - An undetermined host goes to Alert once alert.wait seconds have passed
//     since its last ping (blank alert.wait = 1800). Alert restarts no VMs.
//     A master lost without pool HA therefore leaves every host of the
//     cluster in Alert.
//   - A host determined Down has its VMs handled like
//     HighAvailabilityManagerImpl does: VMs whose service offering does not
//     offer HA are marked Stopped; HA-enabled VMs are started on another Up,
//     Enabled host of the cluster (state Starting for the VM start time, then
//     Running). An Alert host can still be determined Down later, e.g. once
//     a new pool master makes the neighbours reachable.
//   - A successful ping brings an Alert host back Up; a Down host goes
//     through Connecting to Up.
//   - prepareHostForMaintenance is an asynchronous job that follows
//     ResourceManagerImpl.maintain: it refuses a host already in
//     PrepareForMaintenance, ErrorInPrepareForMaintenance or Maintenance, a
//     cluster where another host is preparing, a host with incoming
//     migrations or starting VMs, an agent that does not answer and a
//     Disabled host (job failed, 530, CloudStack's texts); otherwise the
//     resource state becomes PrepareForMaintenance and every VM on the host
//     gets migration work. With no other Up, Enabled host in the cluster
//     the job fails and the host is left in PrepareForMaintenance.
//   - Migration work (HighAvailabilityManagerImpl.migrate, ha.workers at a
//     time) live-migrates the VM to the least loaded Up, Enabled host of
//     the cluster; a failed
//     attempt, or no host to go to, is retried after migrate.retry.interval
//     up to max.retries times. SetMigrationFault makes a VM's migrations
//     fail. An Infra that implements Migrator moves the VM on the XenServer
//     side when the migration completes; its error fails the migration.
//   - Every ping interval the monitor runs attemptMaintain on hosts
//     preparing for maintenance: no VM left gives Maintenance; a failed
//     migration with retries left gives ErrorInPrepareForMaintenance (back
//     to PrepareForMaintenance once the errors are gone); VMs left with no
//     retries give ErrorInMaintenance.
//   - A host in Maintenance (or Disabled) that stops answering is not
//     investigated: it goes to Disconnected, never to Alert or Down, and
//     comes back Up when it answers again, as a rebooted host does.
//   - cancelHostMaintenance cancels scheduled migrations (those under way
//     finish) and returns a host in any maintenance state to Enabled; it
//     fails on a host in no maintenance state.
//
// # Where the model deviates from CloudStack
//
//   - In CloudStack alert.wait only gates the Alert state of a host whose
//     state cannot be determined; a host determined Down gets its HA work
//     scheduled at once. The lab follows what operators observe instead (and
//     what the XenServer HA notes describe): HA restarts start only when the
//     host's last ping is older than alert.wait, so a blank alert.wait delays
//     them by 30 minutes.
//   - HA work is retried on every tick while no host can take a VM, not
//     after restart.retry.interval; ha.tag, force.ha, fencing and per-VM
//     investigation are not modelled.
//   - VM placement stays inside the simulated CloudStack: starting a VM
//     does not move it on the simulated XenServer side, and migrating one
//     does only through an Infra that implements Migrator.
//   - Maintenance follows CloudStack since apache/cloudstack pull request
//     3425 (2020), which added ErrorInPrepareForMaintenance and
//     attemptMaintain. CloudStack 4.3 (the seed's version) sends a failed
//     migration straight to ErrorInMaintenance, cannot cancel from there
//     nor while a VM migrates, and its job errors read differently.
//   - One administrator account (root domain) exists; responses are always
//     JSON, whatever the response parameter says.
//   - Host CPU and memory figures are fixed, plausible values.
package cloudstacksim
