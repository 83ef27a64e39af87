package model

import (
	"reflect"
	"testing"

	"github.com/wharf-registry/wharf/server"
)

func TestAlerts(t *testing.T) {
	report := func(health string, used int64) *server.Report {
		return &server.Report{
			Proxies: []server.ProxyReport{{Name: "hub", Upstream: "https://registry-1.docker.io", Health: health, LastError: "dial tcp: i/o timeout"}},
			Budget:  server.BudgetReport{MaxBytes: 100 << 30, UsedBytes: used},
		}
	}
	var a Alerts
	steps := []struct {
		r    *server.Report
		want []string // titles
	}{
		{report("unknown", 10<<30), nil},
		{report("ok", 10<<30), nil},
		{report("failing", 10<<30), []string{"Upstream failing: hub"}},
		{report("failing", 10<<30), nil}, // once per change
		{report("ok", 91<<30), []string{"Upstream back: hub", "Cache nearly full"}},
		{report("ok", 95<<30), nil},
		{report("rate-limited", 50<<30), []string{"Upstream rate limit: hub"}},
		{report("rate-limited", 92<<30), []string{"Cache nearly full"}}, // below, then near again
		{nil, nil},
	}
	for i, s := range steps {
		var got []string
		for _, al := range a.Next(s.r) {
			got = append(got, al.Title)
		}
		if !reflect.DeepEqual(got, s.want) {
			t.Fatalf("step %d: got %q, want %q", i, got, s.want)
		}
	}
	al := (&Alerts{}).Next(report("failing", 0))
	if len(al) != 1 || al[0].Content != "https://registry-1.docker.io is not answering; wharf serves what it has cached: dial tcp: i/o timeout" {
		t.Fatalf("failing alert: %+v", al)
	}
}
