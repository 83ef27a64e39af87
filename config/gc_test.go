package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/config"
)

func TestGC(t *testing.T) {
	tests := []struct {
		name            string
		yaml            string
		schedule, grace time.Duration
		errs            []string // substrings of the error when invalid
	}{
		{"absent: defaults", "listen: :5000\n", 24 * time.Hour, time.Hour, nil},
		{"as documented", "gc:\n  schedule: 24h\n  grace: 1h\n", 24 * time.Hour, time.Hour, nil},
		{"only schedule keeps default grace", "gc:\n  schedule: 6h\n", 6 * time.Hour, time.Hour, nil},
		{"only grace keeps default schedule", "gc:\n  grace: 30m\n", 24 * time.Hour, 30 * time.Minute, nil},
		{"days", "gc:\n  schedule: 7d\n", 7 * 24 * time.Hour, time.Hour, nil},
		{"schedule 0 turns it off", "gc:\n  schedule: 0s\n", 0, time.Hour, nil},
		{"grace 0", "gc:\n  grace: 0s\n", 24 * time.Hour, 0, nil},
		{"empty section", "gc: {}\n", 24 * time.Hour, time.Hour, nil},
		{"negative schedule", "gc:\n  schedule: -1h\n", 0, 0, []string{"line 2", "gc.schedule", "must not be negative"}},
		{"too often", "gc:\n  schedule: 10ms\n", 0, 0, []string{"gc.schedule", "too often"}},
		{"negative grace", "gc:\n  grace: -5m\n", 0, 0, []string{"line 2", "gc.grace", "must not be negative"}},
		{"not a duration", "gc:\n  grace: soon\n", 0, 0, []string{`"soon" is not a duration`}},
		{"unknown key", "gc:\n  every: 1h\n", 0, 0, []string{"line 2", "unknown key every"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Parse([]byte(tt.yaml))
			if tt.errs == nil {
				if err != nil {
					t.Fatal(err)
				}
				if c.GC.Schedule.Std() != tt.schedule || c.GC.Grace.Std() != tt.grace {
					t.Errorf("gc = %s every %s grace, want %s and %s", c.GC.Schedule.Std(), c.GC.Grace.Std(), tt.schedule, tt.grace)
				}
				again, err := config.Parse([]byte(c.YAML()))
				if err != nil || again.GC.Schedule != c.GC.Schedule || again.GC.Grace != c.GC.Grace {
					t.Errorf("rendered config does not parse back to the same gc section (%v):\n%s", err, c.YAML())
				}
				return
			}
			if err == nil {
				t.Fatalf("parsed %+v, want an error", c.GC)
			}
			for _, s := range tt.errs {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
		})
	}
	if e := config.Embedded(); e.GC.Schedule.Std() != config.DefaultGCSchedule || e.GC.Grace.Std() != config.DefaultGCGrace {
		t.Errorf("Embedded() gc = %+v", e.GC)
	}
}
