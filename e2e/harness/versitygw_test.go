//go:build linux

package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestVersityGW puts an object with a SigV4-signed request (curl's, until
// wharf has an S3 client), reads it back, and reads it again after a
// restart of the server.
func TestVersityGW(t *testing.T) {
	curl := Tool(t, "curl")
	g := StartVersityGW(t)
	g.MakeBucket("wharf")
	file := filepath.Join(t.TempDir(), "obj")
	writeFile(t, file, "hello, s3\n")
	s3 := func(args ...string) string {
		t.Helper()
		argv := append([]string{curl, "-sS", "--fail-with-body", "--aws-sigv4", "aws:amz:" + g.Region + ":s3",
			"--user", g.AccessKey + ":" + g.SecretKey, "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"}, args...)
		out, err := runTool(time.Minute, nil, "", argv...)
		if err != nil {
			t.Fatalf("curl %v: %v\n%s", args, err, out)
		}
		return out
	}
	s3("-T", file, g.Endpoint+"/wharf/prod/blobs/a")
	if got := s3(g.Endpoint + "/wharf/prod/blobs/a"); got != "hello, s3\n" {
		t.Fatalf("GET after PUT: %q", got)
	}
	if b, err := os.ReadFile(filepath.Join(g.Dir, "wharf", "prod", "blobs", "a")); err != nil || string(b) != "hello, s3\n" {
		t.Errorf("the posix backend's file: %q %v", b, err)
	}
	g.Restart()
	if got := s3(g.Endpoint + "/wharf/?list-type=2"); !strings.Contains(got, "<Key>prod/blobs/a</Key>") {
		t.Errorf("listing after a restart: %s", got)
	}
}
