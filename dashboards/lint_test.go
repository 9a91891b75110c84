package dashboards

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"
)

// Stand-ins for Grafana's interval variables. They are odd durations no
// query writes by hand, so that after parsing a range still tells which
// variable it came from.
const (
	rateIntervalStandIn = 7*time.Minute + 7*time.Second
	intervalStandIn     = 3*time.Minute + 3*time.Second
	rangeStandIn        = 5*time.Hour + 5*time.Minute + 5*time.Second
)

// grafanaVar matches $name, ${name} and ${name:format}.
var grafanaVar = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)`)

// expandVariables replaces Grafana's variables in a query so that it parses
// as PromQL: interval variables by their stand-in durations, the others
// (which only appear inside label matcher strings) by "__var_<name>__".
func expandVariables(expr string) string {
	return grafanaVar.ReplaceAllStringFunc(expr, func(m string) string {
		sub := grafanaVar.FindStringSubmatch(m)
		name := sub[1] + sub[2]
		switch name {
		case "__rate_interval":
			return rateIntervalStandIn.String()
		case "__interval":
			return intervalStandIn.String()
		case "__range":
			return rangeStandIn.String()
		case "__range_s":
			return strconv.Itoa(int(rangeStandIn.Seconds()))
		case "__interval_ms":
			return strconv.FormatInt(intervalStandIn.Milliseconds(), 10)
		}
		return "__var_" + name + "__"
	})
}

// queryRules says which conventions a query must follow beyond parsing and
// using exposed metrics.
type queryRules struct {
	// dashboard turns on the dashboard conventions: rate, irate and
	// increase over $__rate_interval; counters only inside those; every
	// selector of a pool-labelled metric filtered by the pool variable.
	dashboard bool
}

// poolLabelled reports whether every series of the metric carries a pool
// label.
func poolLabelled(name string) bool {
	return strings.HasPrefix(name, "xenserver_") ||
		strings.HasPrefix(name, "xsha_pool_") ||
		strings.HasPrefix(name, "xsha_xapi_") ||
		name == "xsha_remediator_hold"
}

var promql = parser.NewParser(parser.Options{})

// checkQuery parses a query with Prometheus' own parser and returns every
// problem found: a parse error, a metric exposed by neither the exporter
// nor the remediator, or a broken dashboard convention.
func checkQuery(expr string, exposed map[string]bool, rules queryRules) []string {
	if strings.TrimSpace(expr) == "" {
		return []string{"empty query"}
	}
	ast, err := promql.ParseExpr(expandVariables(expr))
	if err != nil {
		return []string{fmt.Sprintf("does not parse: %v", err)}
	}
	var problems []string
	parser.Inspect(ast, func(node parser.Node, path []parser.Node) error {
		switch n := node.(type) {
		case *parser.VectorSelector:
			name := selectorName(n)
			if name == "" {
				problems = append(problems, fmt.Sprintf("selector %s has no metric name to check", n))
				return nil
			}
			if !exposed[name] {
				problems = append(problems, fmt.Sprintf("metric %s is not exposed by xsha-exporter or xsha-remediator", name))
			}
			if !rules.dashboard {
				return nil
			}
			if poolLabelled(name) && !hasMatcher(n, "pool", labels.MatchRegexp, "__var_pool__") {
				problems = append(problems, fmt.Sprintf(`selector %s does not filter pool=~"$pool"`, n))
			}
			if strings.HasSuffix(name, "_total") && !insideRateFunc(path) {
				problems = append(problems, fmt.Sprintf("counter %s is used outside rate, irate or increase", name))
			}
		case *parser.Call:
			if !rules.dashboard {
				return nil
			}
			switch n.Func.Name {
			case "rate", "irate", "increase":
				if ms, ok := n.Args[0].(*parser.MatrixSelector); ok && ms.Range != rateIntervalStandIn {
					problems = append(problems, fmt.Sprintf("%s over [%s] instead of [$__rate_interval]", n.Func.Name, ms.Range))
				}
			}
		}
		return nil
	})
	return problems
}

// selectorName returns the metric name of a selector, "" when it has none
// or selects names by regular expression.
func selectorName(vs *parser.VectorSelector) string {
	if vs.Name != "" {
		return vs.Name
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
			return m.Value
		}
	}
	return ""
}

func hasMatcher(vs *parser.VectorSelector, name string, typ labels.MatchType, value string) bool {
	return slices.ContainsFunc(vs.LabelMatchers, func(m *labels.Matcher) bool {
		return m.Name == name && m.Type == typ && m.Value == value
	})
}

// insideRateFunc reports whether the selector at the end of path is the
// range of a rate, irate or increase call.
func insideRateFunc(path []parser.Node) bool {
	if len(path) < 2 {
		return false
	}
	if _, ok := path[len(path)-1].(*parser.MatrixSelector); !ok {
		return false
	}
	call, ok := path[len(path)-2].(*parser.Call)
	return ok && slices.Contains([]string{"rate", "irate", "increase"}, call.Func.Name)
}

// The parts of a Grafana dashboard the checks look at.
type (
	dashboardJSON struct {
		UID           string      `json:"uid"`
		Title         string      `json:"title"`
		Description   string      `json:"description"`
		Editable      *bool       `json:"editable"`
		SchemaVersion int         `json:"schemaVersion"`
		Tags          []string    `json:"tags"`
		Templating    templating  `json:"templating"`
		Panels        []panelJSON `json:"panels"`
	}
	templating struct {
		List []variableJSON `json:"list"`
	}
	variableJSON struct {
		Name       string          `json:"name"`
		Label      string          `json:"label"`
		Type       string          `json:"type"`
		Query      json.RawMessage `json:"query"`
		Datasource *datasourceRef  `json:"datasource"`
		Multi      bool            `json:"multi"`
		IncludeAll bool            `json:"includeAll"`
		AllValue   string          `json:"allValue"`
		Refresh    int             `json:"refresh"`
	}
	datasourceRef struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	}
	panelJSON struct {
		ID          int            `json:"id"`
		Type        string         `json:"type"`
		Title       string         `json:"title"`
		Description string         `json:"description"`
		Datasource  *datasourceRef `json:"datasource"`
		FieldConfig struct {
			Defaults struct {
				Unit string `json:"unit"`
			} `json:"defaults"`
		} `json:"fieldConfig"`
		Targets []targetJSON `json:"targets"`
		Panels  []panelJSON  `json:"panels"`
	}
	targetJSON struct {
		RefID      string         `json:"refId"`
		Expr       string         `json:"expr"`
		Datasource *datasourceRef `json:"datasource"`
	}
)

// templatedDatasource is how panels, targets and variables refer to the
// datasource variable.
const templatedDatasource = "${datasource}"

// labelValues matches Grafana's label_values(selector, label) and
// label_values(label) variable queries.
var labelValues = regexp.MustCompile(`^\s*label_values\(\s*(?:(.+),\s*)?(\w+)\s*\)\s*$`)

// checkDashboard returns every problem found in one dashboard file: the
// rules of grafana/dashboard-linter this project follows, the pool and
// datasource variables, and every query through checkQuery.
func checkDashboard(data []byte, exposed map[string]bool) []string {
	var d dashboardJSON
	if err := json.Unmarshal(data, &d); err != nil {
		return []string{fmt.Sprintf("not a dashboard: %v", err)}
	}
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	if !regexp.MustCompile(`^xsha-[a-z-]+$`).MatchString(d.UID) {
		add("uid %q is not a stable xsha-... uid", d.UID)
	}
	if d.Title == "" || d.Description == "" {
		add("dashboard has no title or description")
	}
	if d.Editable == nil || *d.Editable {
		add("dashboard is editable; provisioned dashboards set editable: false")
	}
	if d.SchemaVersion < 36 || d.SchemaVersion > 41 {
		add("schemaVersion %d is not one Grafana 10 or 11 writes", d.SchemaVersion)
	}
	if !slices.Contains(d.Tags, "xsha") {
		add("dashboard is not tagged xsha")
	}

	vars := map[string]variableJSON{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
		switch v.Type {
		case "datasource":
			if v.Name != "datasource" || v.Label != "Data source" || string(v.Query) != `"prometheus"` {
				add("datasource variable must be named datasource, labelled \"Data source\", of type prometheus")
			}
		case "query":
			if v.Datasource == nil || v.Datasource.UID != templatedDatasource {
				add("variable %s does not use the datasource variable", v.Name)
			}
			if v.Refresh != 2 {
				add("variable %s does not refresh on time range change (refresh: 2)", v.Name)
			}
			if v.Multi && v.IncludeAll && v.AllValue != ".+" {
				add("variable %s selects all without allValue \".+\"", v.Name)
			}
			for _, p := range checkVariableQuery(v.Query, exposed) {
				add("variable %s: %s", v.Name, p)
			}
		}
	}
	if _, ok := vars["datasource"]; !ok {
		add("no datasource variable")
	}
	if pool, ok := vars["pool"]; !ok || pool.Type != "query" || !pool.Multi || !pool.IncludeAll {
		add("no multi-value pool query variable with All")
	}

	var walk func(panels []panelJSON)
	walk = func(panels []panelJSON) {
		for _, p := range panels {
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			where := fmt.Sprintf("panel %q", p.Title)
			if p.Title == "" || p.Description == "" {
				add("%s has no title or description", where)
			}
			if p.FieldConfig.Defaults.Unit == "" {
				add("%s has no unit", where)
			}
			if p.Datasource == nil || p.Datasource.UID != templatedDatasource {
				add("%s does not use the datasource variable", where)
			}
			if len(p.Targets) == 0 {
				add("%s has no query", where)
			}
			for _, t := range p.Targets {
				if t.Datasource == nil || t.Datasource.UID != templatedDatasource {
					add("%s query %s does not use the datasource variable", where, t.RefID)
				}
				for _, q := range checkQuery(t.Expr, exposed, queryRules{dashboard: true}) {
					add("%s query %s: %s", where, t.RefID, q)
				}
			}
		}
	}
	walk(d.Panels)
	return problems
}

// checkVariableQuery checks the selector of a label_values variable query.
func checkVariableQuery(raw json.RawMessage, exposed map[string]bool) []string {
	var q string
	if err := json.Unmarshal(raw, &q); err != nil {
		var obj struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(raw, &obj); err != nil {
			return []string{fmt.Sprintf("unreadable query: %v", err)}
		}
		q = obj.Query
	}
	m := labelValues.FindStringSubmatch(q)
	if m == nil {
		return []string{fmt.Sprintf("query %q is not label_values(selector, label)", q)}
	}
	if m[1] == "" {
		return []string{fmt.Sprintf("query %q has no selector to check", q)}
	}
	return checkQuery(m[1], exposed, queryRules{})
}

// The parts of a Prometheus rule file the checks look at.
type (
	ruleFile struct {
		Groups []ruleGroup `yaml:"groups"`
	}
	ruleGroup struct {
		Name  string     `yaml:"name"`
		Rules []ruleYAML `yaml:"rules"`
	}
	ruleYAML struct {
		Alert       string            `yaml:"alert"`
		Record      string            `yaml:"record"`
		Expr        string            `yaml:"expr"`
		For         string            `yaml:"for"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	}
)

// runbookURL is where an alert's runbook is published: docs/runbooks in the
// repository, one file per alert.
const runbookURL = "https://github.com/xsha/xsha/blob/main/docs/runbooks/%s.md"

var (
	alertNameRule    = regexp.MustCompile(`^([A-Z]+[a-z0-9]+)+$`)
	summaryStyleRule = regexp.MustCompile(`^[A-Z].+\.$`)
)

// checkRules returns every problem found in one rule file: expressions
// through checkQuery, and the mixtool lint rules for alert names, severity,
// summary, description and runbook_url. runbookExists says whether the
// runbook of an alert (lower-cased name) is in the repository.
func checkRules(data []byte, exposed map[string]bool, runbookExists func(string) bool) []string {
	var f ruleFile
	if err := yaml.Unmarshal(data, &f); err != nil {
		return []string{fmt.Sprintf("not a rule file: %v", err)}
	}
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if len(f.Groups) == 0 {
		add("no rule groups")
	}
	for _, g := range f.Groups {
		if len(g.Name) > 40 || len(g.Rules) > 20 {
			add("group %q: name over 40 characters or more than 20 rules", g.Name)
		}
		for i, r := range g.Rules {
			name := r.Alert + r.Record
			where := fmt.Sprintf("group %q rule %d (%s)", g.Name, i, name)
			for _, q := range checkQuery(r.Expr, exposed, queryRules{}) {
				add("%s: %s", where, q)
			}
			if r.Alert == "" {
				continue
			}
			if !alertNameRule.MatchString(r.Alert) || len(r.Alert) > 40 {
				add("%s: alert name is not CamelCase of at most 40 characters", where)
			}
			if s := r.Labels["severity"]; !slices.Contains([]string{"critical", "warning", "info"}, s) {
				add("%s: severity %q is not critical, warning or info", where, s)
			}
			summary := r.Annotations["summary"]
			if !summaryStyleRule.MatchString(summary) || strings.Contains(summary, "{{") {
				add("%s: summary %q is not a static sentence", where, summary)
			}
			if !strings.Contains(r.Annotations["description"], "{{") {
				add("%s: description is not templated", where)
			}
			lower := strings.ToLower(r.Alert)
			if r.Annotations["runbook_url"] != fmt.Sprintf(runbookURL, lower) {
				add("%s: runbook_url %q, want %q", where, r.Annotations["runbook_url"], fmt.Sprintf(runbookURL, lower))
			}
			if !runbookExists(lower) {
				add("%s: no runbook docs/runbooks/%s.md", where, lower)
			}
		}
	}
	return problems
}
