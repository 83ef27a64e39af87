package model

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestPlanSetup(t *testing.T) {
	docker := SetupClients("/etc/docker/daemon.json", "/etc/containerd/certs.d", "/etc/containers/registries.conf.d/50-wharf.conf")[0]
	base := []string{"/usr/bin/wharf", "setup", "docker", "--mirror", "http://192.0.2.7:5000", "--daemon-config", "/etc/docker/daemon.json", "--config", "/home/u/.config/wharf/wharf.yml"}
	apply := append(slices.Clone(base), "--apply")
	for _, tc := range []struct {
		name     string
		canWrite bool
		pkexec   string
		want     SetupPlan
	}{
		{"user's own file", true, "/usr/bin/pkexec", SetupPlan{Preview: base, Apply: apply,
			Terminal: "/usr/bin/wharf setup docker --mirror http://192.0.2.7:5000 --daemon-config /etc/docker/daemon.json --config /home/u/.config/wharf/wharf.yml --apply"}},
		{"root's file, pkexec there", false, "/usr/bin/pkexec", SetupPlan{Preview: base, Apply: append([]string{"/usr/bin/pkexec"}, apply...), Via: "pkexec",
			Terminal: "sudo /usr/bin/wharf setup docker --mirror http://192.0.2.7:5000 --daemon-config /etc/docker/daemon.json --config /home/u/.config/wharf/wharf.yml --apply"}},
		{"root's file, no pkexec", false, "", SetupPlan{Preview: base, Via: "terminal",
			Terminal: "sudo /usr/bin/wharf setup docker --mirror http://192.0.2.7:5000 --daemon-config /etc/docker/daemon.json --config /home/u/.config/wharf/wharf.yml --apply"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := PlanSetup(docker, "/usr/bin/wharf", "http://192.0.2.7:5000", "/home/u/.config/wharf/wharf.yml", tc.canWrite, tc.pkexec)
			if !slices.Equal(got.Preview, tc.want.Preview) || !slices.Equal(got.Apply, tc.want.Apply) || got.Via != tc.want.Via || got.Terminal != tc.want.Terminal {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestShellJoinQuotes(t *testing.T) {
	got := shellJoin([]string{"wharf", "--config", "/home/u/My Files/wharf.yml", "it's", ""})
	if want := `wharf --config '/home/u/My Files/wharf.yml' 'it'\''s' ''`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestWritable(t *testing.T) {
	dir := t.TempDir()
	if !Writable(filepath.Join(dir, "not", "yet", "there.conf")) {
		t.Fatal("a file under a writable directory that does not exist yet is not writable")
	}
	if os.Geteuid() != 0 && Writable("/etc/passwd") {
		t.Fatal("/etc/passwd is writable by a user")
	}
	f := filepath.Join(dir, "daemon.json")
	os.WriteFile(f, []byte("{}"), 0o600)
	if !Writable(f) {
		t.Fatal("the user's own file is not writable")
	}
}
