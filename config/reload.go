package config

import "reflect"

// RestartSections names the top-level sections that differ between old
// and next and that a running server applies only at its next start:
// everything but auth, which server.Reload applies live (except turning
// it on or off). Both the server's reload and the desktop app's settings
// use this one list, so what the app promises is what the server does.
func RestartSections(old, next *Config) []string {
	var out []string
	for _, sec := range []struct {
		key  string
		a, b any
	}{
		{"listen", old.Listen, next.Listen},
		{"data_dir", old.DataDir, next.DataDir},
		{"log", old.Log, next.Log},
		{"hosted", old.Hosted, next.Hosted},
		{"proxies", old.Proxies, next.Proxies},
		{"cache", old.Cache, next.Cache},
		{"metrics", old.Metrics, next.Metrics},
		{"gc", old.GC, next.GC},
		{"tls", old.TLS, next.TLS},
		{"storage", old.Storage, next.Storage},
		{"index", old.Index, next.Index},
		{"cluster", old.Cluster, next.Cluster},
	} {
		if !reflect.DeepEqual(sec.a, sec.b) {
			out = append(out, sec.key)
		}
	}
	return out
}
