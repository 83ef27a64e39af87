package config_test

import (
	"strings"
	"testing"

	"github.com/wharf-registry/wharf/config"
)

func TestMetricsListen(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string   // parsed metrics.listen when valid
		errs []string // substrings of the error when invalid
	}{
		{"unset: main listener", "listen: :5000\n", "", nil},
		{"separate loopback port", "listen: :5000\nmetrics:\n  listen: 127.0.0.1:9090\n", "127.0.0.1:9090", nil},
		{"same port, other host", "listen: 127.0.0.1:5000\nmetrics:\n  listen: 127.0.0.2:5000\n", "127.0.0.2:5000", nil},
		{"port 0 picks a free port", "listen: 127.0.0.1:0\nmetrics:\n  listen: 127.0.0.1:0\n", "127.0.0.1:0", nil},
		{"not host:port", "metrics:\n  listen: 9090\n", "", []string{"line 2", "metrics.listen", `"9090" is not host:port`}},
		{"bad port", "metrics:\n  listen: 127.0.0.1:99999\n", "", []string{"line 2", "no valid port"}},
		{"same as listen", "listen: 127.0.0.1:5000\nmetrics:\n  listen: 127.0.0.1:5000\n", "", []string{"line 3", "same address as listen"}},
		{"clashes with all interfaces", "listen: :5000\nmetrics:\n  listen: 127.0.0.1:5000\n", "", []string{"same address as listen"}},
		{"unknown key", "metrics:\n  addr: x\n", "", []string{"line 2", "unknown key addr"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Parse([]byte(tt.yaml))
			if tt.errs == nil {
				if err != nil {
					t.Fatal(err)
				}
				if c.Metrics.Listen != tt.want {
					t.Errorf("metrics.listen = %q, want %q", c.Metrics.Listen, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("parsed %+v, want an error", c.Metrics)
			}
			for _, s := range tt.errs {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
		})
	}
}

func TestMetricsListenOverrideClash(t *testing.T) {
	c, err := config.Parse([]byte("listen: :5000\nmetrics:\n  listen: 127.0.0.1:9090\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WithOverrides("127.0.0.1:9090", ""); err == nil || !strings.Contains(err.Error(), "same address as listen") {
		t.Errorf("--listen onto the metrics address: %v", err)
	}
	if !strings.Contains(c.YAML(), "metrics:\n    listen: 127.0.0.1:9090") {
		t.Errorf("rendered config lacks metrics.listen:\n%s", c.YAML())
	}
	if strings.Contains(config.Embedded().YAML(), "metrics") {
		t.Errorf("an unset metrics section is rendered:\n%s", config.Embedded().YAML())
	}
}
