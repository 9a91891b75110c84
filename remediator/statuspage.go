package remediator

import (
	"html/template"
	"io"
	"net/http"
	"time"

	"xsha/remediator/journal"
)

// statusTmpl is the status page. Times are written in UTC, as RFC 3339
// in each <time> element's datetime attribute; statusJS rewrites them in
// the browser's time zone, the operator's. Tables scroll sideways within
// their box, so the page itself fits a phone's width.
var statusTmpl = template.Must(template.New("status").Funcs(template.FuncMap{
	"ts": func(t time.Time) template.HTML {
		if t.IsZero() {
			return ""
		}
		t = t.UTC()
		return template.HTML(`<time datetime="` + t.Format(time.RFC3339) + `">` + t.Format("2006-01-02 15:04:05") + ` UTC</time>`)
	},
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>xsha-remediator</title>
<link rel="icon" href="data:,">
<style>
body { font-family: sans-serif; margin: 1em; line-height: 1.4; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.5em; }
.scroll { overflow-x: auto; max-width: 100%; margin-bottom: 1em; }
table { border-collapse: collapse; }
#actions { width: 100%; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; white-space: nowrap; }
td.reason, td.steps { white-space: normal; }
td.reason { min-width: 10em; overflow-wrap: anywhere; }
time { white-space: nowrap; }
@media (max-width: 40em) {
  /* A phone: each row is a card of label: value lines. */
  table, tbody, tr, td { display: block; }
  tr:first-child { display: none; }
  tr { border: 1px solid #ccc; margin-bottom: 0.75em; }
  td { border: none; border-bottom: 1px solid #eee; }
  td::before { content: attr(data-label) ": "; font-weight: bold; }
  td.reason { min-width: 0; }
  td:empty { display: none; }
}
.success { color: #1a7f37; } .failed { color: #cf222e; } .dry_run, .skipped, .cancelled { color: #6e7781; } .running, .pending { color: #9a6700; font-weight: bold; }
.mode { padding: 0.5em; border-left: 4px solid #9a6700; background: #fff8e5; }
.mode.live { border-color: #1a7f37; background: #eefbf1; }
.breaker { padding: 0.5em; border-left: 4px solid #cf222e; background: #ffebe9; }
</style>
<script src="static/status.js" defer></script>
</head>
<body>
<h1>xsha-remediator</h1>
<p class="mode{{if not .DryRun}} live{{end}}" id="mode">Mode: {{if .DryRun}}<strong>dry-run</strong>: actions read live state and journal what they would do; nothing is written.{{else}}<strong>live</strong> for the actions the policy enables.{{end}}
Enabled actions: {{range $i, $a := .Actions}}{{if $i}}; {{end}}{{$a.Name}} (pools: {{range $j, $p := $a.Pools}}{{if $j}}, {{end}}{{$p}}{{end}}{{if $a.DryRun}}; dry-run{{end}}){{else}}none{{end}}</p>
<p id="tz">Times are in UTC.</p>
{{with .Down}}<p class="breaker" id="journal-down"><strong>Journal unavailable</strong> since {{ts .Since}}: {{.Err}}. Actions stop before their next XAPI write and webhooks are answered 503 (Alertmanager retries); acting resumes by itself once the journal answers again.
{{if $.Read.IsZero}}Nothing was read from the journal since this replica started.{{else}}Below is the state as last read, at {{ts $.Read}}.{{end}}</p>
{{end}}{{with .Breaker}}{{if .Open}}<p class="breaker" id="breaker"><strong>Breaker open</strong> since {{ts .Since}}: {{.Reason}}. No new action runs; running actions that have written finish.
Pools with a firing remediable alert: {{range $i, $p := .Pools}}{{if $i}}, {{end}}{{$p}}{{else}}none now{{end}}.
{{if .AutoClose}}It closes by itself once the count is within the limits again, or{{else}}It stays open until{{end}} an operator resets it (POST api/v1/breaker/reset); see the runbook XSHARemediationBreakerOpen.</p>
{{else}}<p id="breaker">Breaker: closed{{if not .Enabled}} (turned off by the policy){{end}}; {{len .Pools}} pool(s) with a firing remediable alert{{if .ClosedBy}}; last closed {{ts .Closed}} ({{.ClosedBy}}){{end}}.</p>
{{end}}{{end}}
<h2>Holds</h2>
{{if .Holds}}<div class="scroll"><table id="holds">
<tr><th>Pool</th><th>Source</th><th>Since</th><th>Reason</th></tr>
{{range .Holds}}<tr><td data-label="Pool">{{if .Pool}}{{.Pool}}{{else}}every pool{{end}}</td><td data-label="Source">{{.Source}}</td><td data-label="Since">{{ts .Since}}</td><td data-label="Reason" class="reason">{{.Reason}}</td></tr>
{{end}}</table></div>{{else}}<p>None.</p>{{end}}
<h2>Workflows</h2>
{{if .Workflows}}<div class="scroll"><table id="workflows">
<tr><th>ID</th><th>Created</th><th>Workflow</th><th>Pool</th><th>Host</th><th>State</th><th>Steps</th><th>Reason</th></tr>
{{range .Workflows}}<tr id="workflow-{{.ID}}"><td data-label="ID"><a href="api/v1/workflows/{{.ID}}">{{.ID}}</a></td><td data-label="Created">{{ts .Created}}</td><td data-label="Workflow">{{.Name}}{{if .DryRun}} (dry-run){{end}}{{if .NewMaster}} (new master {{.NewMaster}}){{end}}</td><td data-label="Pool">{{.Pool}}</td><td data-label="Host">{{.Host}}</td><td data-label="State" class="state {{.State}}">{{.State}}</td><td data-label="Steps" class="steps">{{range .StepViews}}<span class="{{.State}}">{{.Name}}: {{.State}}{{if .Took}} ({{.Took}}){{end}}</span><br>{{end}}</td><td data-label="Reason" class="reason">{{.Reason}}</td></tr>
{{end}}</table></div>{{else}}<p id="workflows">None yet. Planned-maintenance workflows (restart_slave, restart_master, shutdown, bring_back) that an operator starts with xshactl or POST /api/v1/workflows are listed here, step by step.</p>{{end}}
<h2>Recent actions</h2>
{{if .Records}}<div class="scroll"><table id="actions">
<tr><th>ID</th><th>Created</th><th>Action</th><th>Pool</th><th>Host</th><th>Alert</th><th>State</th><th>Steps</th><th>Reason</th></tr>
{{range .Records}}<tr id="action-{{.ID}}"><td data-label="ID"><a href="api/v1/actions/{{.ID}}">{{.ID}}</a></td><td data-label="Created">{{ts .Created}}</td><td data-label="Action">{{.Name}}{{if .DryRun}} (dry-run){{end}}</td><td data-label="Pool">{{.Pool}}</td><td data-label="Host">{{.Host}}</td><td data-label="Alert">{{.Alert.Name}}</td><td data-label="State" class="state {{.State}}">{{.State}}{{if and .Replica (eq .State "running")}} on {{.Replica}}{{end}}</td><td data-label="Steps" class="steps">{{range .Steps}}{{.Name}}: {{.State}}<br>{{end}}</td><td data-label="Reason" class="reason">{{.Reason}}</td></tr>
{{end}}</table></div>{{else}}<p>None yet.</p>{{end}}
<p><a href="api/v1/actions">actions (JSON)</a> · <a href="api/v1/holds">holds (JSON)</a> · <a href="api/v1/breaker">breaker (JSON)</a> · <a href="api/v1/journal">journal (JSON)</a> · <a href="metrics">metrics</a></p>
</body>
</html>
`))

// statusJS shows the status page's times in the browser's time zone.
const statusJS = `"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  document.querySelectorAll("time[datetime]").forEach(function (el) {
    var d = new Date(el.getAttribute("datetime"));
    if (isNaN(d)) { return; }
    el.title = el.textContent;
    el.textContent = d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  });
  document.getElementById("tz").textContent = "Times are in " + zone + " (your browser's time zone); hover for UTC.";
});
`

// handleStatusJS serves statusJS.
func handleStatusJS(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	_, _ = io.WriteString(w, statusJS)
}

// statusData is what the status page shows.
type statusData struct {
	DryRun    bool
	Actions   []actionView
	Holds     []journal.Hold
	Records   []*journal.Action
	Breaker   BreakerStatus
	Workflows []workflowView
	// Read is when the journal was read.
	Read time.Time
	// Down is set while the journal does not answer: the page then shows
	// what was read last, as of Read.
	Down *journalFailure
}

// actionView is an action the policy enables, as the page shows it.
type actionView struct {
	Name   ActionName
	Pools  []string
	DryRun bool
}

// handleStatus is the status page at /: dry-run state, holds, workflows
// step by step and recent actions. It shows no secrets: none are in the
// journal. While the journal does not answer (etcd without a quorum) it
// answers 503 with the page as last read, under a banner that says since
// when and why.
func (r *engine) handleStatus(w http.ResponseWriter, _ *http.Request) {
	pol := r.policy.Load()
	data, err := r.readStatus()
	r.noteJournal(err)
	code := http.StatusOK
	if err != nil {
		code = http.StatusServiceUnavailable
		if last := r.lastStatus.Load(); last != nil {
			data = *last
		}
		data.Down = r.journalFailed()
	} else {
		last := data // a copy: data is changed below, the stored one never
		r.lastStatus.Store(&last)
	}
	data.DryRun = !pol.anyLive()
	data.Actions = nil
	for _, spec := range actionTable {
		if a, ok := pol.Actions[spec.name]; ok {
			data.Actions = append(data.Actions, actionView{spec.name, a.Pools, pol.dryRunFor(spec.name)})
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	if err := statusTmpl.Execute(w, data); err != nil {
		r.log.Error("rendering status page", "err", err)
	}
}

// readStatus reads what the status page shows from the journal.
func (r *engine) readStatus() (statusData, error) {
	d := statusData{Read: r.now()}
	all, err := r.recentActions(maxListLimit)
	if err != nil {
		return d, err
	}
	for _, a := range all {
		switch {
		case isWorkflow(a.Name) && len(d.Workflows) < defaultListLimit:
			d.Workflows = append(d.Workflows, r.workflowView(a))
		case !isWorkflow(a.Name) && len(d.Records) < defaultListLimit:
			d.Records = append(d.Records, a)
		}
	}
	if d.Holds, err = r.holdsView(); err != nil {
		return d, err
	}
	if d.Breaker, err = r.breakerView(); err != nil {
		return d, err
	}
	return d, nil
}
