package config

import (
	"slices"
	"testing"
)

func TestRestartSections(t *testing.T) {
	base := `listen: :5000
hosted: [{name: team}]
proxies: [{name: hub, upstream: "https://registry-1.docker.io", default: true}]
`
	for _, tc := range []struct {
		name, next string
		want       []string
	}{
		{"same", base, nil},
		{"data_dir", base + "data_dir: ./other\n", []string{"data_dir"}},
		{"hosted and tls", "listen: :5000\nhosted: [{name: team}, {name: ci}]\nproxies: [{name: hub, upstream: \"https://registry-1.docker.io\", default: true}]\ntls: {mode: self-signed}\n", []string{"hosted", "tls"}},
		{"auth is live", base + "auth: {htpasswd: ./htpasswd}\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old, err := Parse([]byte(base))
			if err != nil {
				t.Fatal(err)
			}
			next, err := Parse([]byte(tc.next))
			if err != nil {
				t.Fatal(err)
			}
			if got := RestartSections(old, next); !slices.Equal(got, tc.want) {
				t.Errorf("RestartSections = %q, want %q", got, tc.want)
			}
		})
	}
}
