package remediator

import (
	"html/template"
	"net/http"
	"time"
)

var statusTmpl = template.Must(template.New("status").Funcs(template.FuncMap{
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>xsha-remediator</title>
<style>
body { font-family: sans-serif; margin: 1.5em; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
.success { color: #1a7f37; } .failed { color: #cf222e; } .dry_run, .skipped, .cancelled { color: #6e7781; } .running, .pending { color: #9a6700; }
</style>
</head>
<body>
<h1>xsha-remediator</h1>
<p>Mode: {{if .DryRun}}<strong>dry-run</strong>: actions read live state and journal what they would do; nothing is written.{{else}}<strong>live</strong> for the actions the policy enables.{{end}}
Enabled actions: {{range $i, $a := .Actions}}{{if $i}}; {{end}}{{$a.Name}} (pools: {{range $j, $p := $a.Pools}}{{if $j}}, {{end}}{{$p}}{{end}}{{if $a.DryRun}}; dry-run{{end}}){{else}}none{{end}}</p>
<h2>Holds</h2>
{{if .Holds}}<table>
<tr><th>Pool</th><th>Source</th><th>Since</th><th>Reason</th></tr>
{{range .Holds}}<tr><td>{{if .Pool}}{{.Pool}}{{else}}every pool{{end}}</td><td>{{.Source}}</td><td>{{ts .Since}}</td><td>{{.Reason}}</td></tr>
{{end}}</table>{{else}}<p>None.</p>{{end}}
<h2>Recent actions</h2>
{{if .Records}}<table>
<tr><th>ID</th><th>Created</th><th>Action</th><th>Pool</th><th>Host</th><th>Alert</th><th>State</th><th>Steps</th><th>Reason</th></tr>
{{range .Records}}<tr><td><a href="api/v1/actions/{{.ID}}">{{.ID}}</a></td><td>{{ts .Created}}</td><td>{{.Action}}{{if .DryRun}} (dry-run){{end}}</td><td>{{.Pool}}</td><td>{{.Host}}</td><td>{{.Alert.Name}}</td><td class="{{.State}}">{{.State}}</td><td>{{range .Steps}}{{.Name}}: {{.State}}<br>{{end}}</td><td>{{.Reason}}</td></tr>
{{end}}</table>{{else}}<p>None yet.</p>{{end}}
<p><a href="api/v1/actions">actions (JSON)</a> · <a href="api/v1/holds">holds (JSON)</a> · <a href="api/v1/journal">journal (JSON)</a> · <a href="metrics">metrics</a></p>
</body>
</html>
`))

// handleStatus is the status page at /: dry-run state, holds and recent
// actions. It shows no secrets: none are in the journal.
func (r *engine) handleStatus(w http.ResponseWriter, req *http.Request) {
	recs, err := r.recentActions(defaultListLimit)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	holds, err := r.holdsView()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	type actionView struct {
		Name   ActionName
		Pools  []string
		DryRun bool
	}
	pol := r.policy.Load()
	var actions []actionView
	for _, spec := range actionTable {
		if a, ok := pol.Actions[spec.name]; ok {
			actions = append(actions, actionView{spec.name, a.Pools, pol.DryRunFor(spec.name)})
		}
	}
	data := struct {
		DryRun  bool
		Actions []actionView
		Holds   []Hold
		Records []*Action
	}{!pol.anyLive(), actions, holds, recs}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := statusTmpl.Execute(w, data); err != nil {
		r.log.Error("rendering status page", "err", err)
	}
}
