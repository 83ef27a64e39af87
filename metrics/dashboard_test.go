package metrics

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dashboardPath is the Grafana dashboard shipped for these metrics.
var dashboardPath = filepath.Join("..", "packaging", "grafana", "wharf.json")

// dashboardQueries returns every PromQL query in a Grafana dashboard: panel
// targets (rows included) and templating variables, each with where it is.
func dashboardQueries(t testing.TB, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title      string            `json:"title"`
		UID        string            `json:"uid"`
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s is not valid JSON: %v", path, err)
	}
	if d.Title == "" || d.UID == "" || len(d.Panels) == 0 {
		t.Fatalf("%s: title %q, uid %q, %d panels", path, d.Title, d.UID, len(d.Panels))
	}
	out := map[string]string{}
	ids := map[int]bool{}
	var walk func(raw []json.RawMessage)
	walk = func(raw []json.RawMessage) {
		for _, r := range raw {
			var p struct {
				ID      int                 `json:"id"`
				Type    string              `json:"type"`
				Title   string              `json:"title"`
				GridPos *struct{ W, H int } `json:"gridPos"`
				Panels  []json.RawMessage   `json:"panels"`
				Targets []struct {
					Expr  string `json:"expr"`
					RefID string `json:"refId"`
				} `json:"targets"`
			}
			if err := json.Unmarshal(r, &p); err != nil {
				t.Fatal(err)
			}
			if ids[p.ID] || p.ID == 0 {
				t.Errorf("panel %q: id %d missing or used twice", p.Title, p.ID)
			}
			ids[p.ID] = true
			if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 {
				t.Errorf("panel %q has no size", p.Title)
			}
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			refs := map[string]bool{}
			for _, tg := range p.Targets {
				if tg.Expr == "" || refs[tg.RefID] {
					t.Errorf("panel %q: empty expr or refId %q used twice", p.Title, tg.RefID)
				}
				refs[tg.RefID] = true
				out[p.Title+" "+tg.RefID] = tg.Expr
			}
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q := v.Query
		if m, ok := q.(map[string]any); ok {
			q = m["query"]
		}
		s, _ := q.(string)
		if s == "" {
			t.Errorf("variable %s has no query", v.Name)
			continue
		}
		out["variable "+v.Name] = s
	}
	return out
}

var (
	stringLit  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	metricName = regexp.MustCompile(`\b(?:wharf|go|process|promhttp)_[a-zA-Z0-9_:]*`)
	selector   = regexp.MustCompile(`\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}`)
	matcher    = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	grouping   = regexp.MustCompile(`\b(?:by|without|on|ignoring)\s*\(([^)]*)\)`)
)

// exposed maps each sample name in an exposition to the label names seen on it.
func exposed(text string) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, rest, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		if out[name] == nil {
			out[name] = map[string]bool{}
		}
		if labels, _, ok := strings.Cut(rest, "}"); ok {
			for _, m := range matcher.FindAllStringSubmatch(labels, -1) {
				out[name][m[1]] = true
			}
		}
	}
	return out
}

// Every query in the dashboard names only metrics the exposition has, and
// filters and groups only by labels those metrics carry.
func TestDashboardUsesExposedMetrics(t *testing.T) {
	m := New("dev")
	exercise(m)
	have := exposed(scrape(t, m))
	// Prometheus adds these to every scraped series.
	target := map[string]bool{"instance": true, "job": true}
	for where, expr := range dashboardQueries(t, dashboardPath) {
		names := slices.Compact(slices.Sorted(slices.Values(metricName.FindAllString(stringLit.ReplaceAllString(expr, `""`), -1))))
		if len(names) == 0 {
			t.Errorf("%s: no wharf metric in %s", where, expr)
		}
		labels := map[string]bool{"le": true}
		for _, n := range names {
			if have[n] == nil {
				t.Errorf("%s: %s is not in the exposition", where, n)
			}
			for l := range have[n] {
				labels[l] = true
			}
		}
		for _, sel := range selector.FindAllStringSubmatch(expr, -1) {
			if have[sel[1]] == nil {
				continue // a function call, or reported above
			}
			for _, lm := range matcher.FindAllStringSubmatch(stringLit.ReplaceAllString(sel[2], `""`), -1) {
				if !have[sel[1]][lm[1]] && !target[lm[1]] {
					t.Errorf("%s: %s has no label %s", where, sel[1], lm[1])
				}
			}
		}
		for _, g := range grouping.FindAllStringSubmatch(expr, -1) {
			for _, l := range strings.Split(g[1], ",") {
				if l = strings.TrimSpace(l); l != "" && !labels[l] && !target[l] {
					t.Errorf("%s: grouping by %s, which none of %v has", where, l, names)
				}
			}
		}
	}
}
