package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The cluster contract of issue 13, exactly as written there.
const clusterContract = `listen: 127.0.0.1:5000
storage:
  s3:
    endpoint: http://127.0.0.1:7070   # any S3-compatible store; omitted: AWS
    region: us-east-1
    bucket: wharf
    prefix: prod/                     # optional
    access_key: KEY
    secret_key: SECRET                # or secret_key_env / secret_key_file
index:
  postgres: postgres://wharf:pw@127.0.0.1:5432/wharf?sslmode=disable
proxies:
  - name: hub
    upstream: https://registry-1.docker.io
    default: true
hosted:
  - name: team
`

func TestClusterContract(t *testing.T) {
	c, err := Parse([]byte(clusterContract))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Storage.S3
	if !c.Clustered() || s == nil || s.Endpoint != "http://127.0.0.1:7070" || s.Region != "us-east-1" || s.Bucket != "wharf" ||
		s.Prefix != "prod/" || s.AccessKey != "KEY" || s.SecretKey != "SECRET" || s.Redirect {
		t.Fatalf("storage.s3 = %+v, clustered %v", s, c.Clustered())
	}
	if c.Index.Postgres != "postgres://wharf:pw@127.0.0.1:5432/wharf?sslmode=disable" {
		t.Errorf("index.postgres = %q", c.Index.Postgres)
	}
	if c.DataDir != DefaultDataDir {
		t.Errorf("data_dir = %q: optional in cluster mode, the replica's scratch area", c.DataDir)
	}
	if sec, err := s.ResolveSecretKey(); err != nil || sec != "SECRET" {
		t.Errorf("secret = %q, %v", sec, err)
	}
	out := c.Sanitize().YAML()
	if strings.Contains(out, "SECRET") || strings.Contains(out, ":pw@") {
		t.Errorf("Sanitize left a secret:\n%s", out)
	}
	if c.Storage.S3.SecretKey != "SECRET" || !strings.Contains(c.Index.Postgres, ":pw@") {
		t.Error("Sanitize changed the original")
	}
	// What Sanitize prints parses back.
	if _, err := Parse([]byte(out)); err != nil {
		t.Errorf("sanitized config does not parse: %v\n%s", err, out)
	}

	plain, err := Parse([]byte("listen: :5000\n"))
	if err != nil || plain.Clustered() || plain.Storage.S3 != nil || plain.Index.Postgres != "" {
		t.Errorf("without the keys: clustered %v, %+v, %v", plain.Clustered(), plain.Storage, err)
	}
}

func TestClusterSecretSources(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "secret")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("WHARF_TEST_S3_SECRET", "from-env")
	base := strings.Replace(clusterContract, "    secret_key: SECRET                # or secret_key_env / secret_key_file\n", "", 1)
	for _, c := range []struct{ line, want string }{
		{"    secret_key_file: " + file + "\n", "from-file"},
		{"    secret_key_env: WHARF_TEST_S3_SECRET\n", "from-env"},
	} {
		cfg, err := Parse([]byte(strings.Replace(base, "    access_key: KEY\n", "    access_key: KEY\n"+c.line, 1)))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := cfg.Storage.S3.ResolveSecretKey(); err != nil || got != c.want {
			t.Errorf("%s: secret = %q, %v", strings.TrimSpace(c.line), got, err)
		}
	}
	cfg, err := Parse([]byte(strings.Replace(base, "    access_key: KEY\n", "    access_key: KEY\n    secret_key_env: WHARF_TEST_UNSET_VAR\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.Storage.S3.ResolveSecretKey(); err == nil || !strings.Contains(err.Error(), "WHARF_TEST_UNSET_VAR") {
		t.Errorf("unset variable: %v", err)
	}
}

func TestClusterConfigErrors(t *testing.T) {
	for _, c := range []struct{ from, to, want string }{
		{"index:\n  postgres: postgres://wharf:pw@127.0.0.1:5432/wharf?sslmode=disable\n", "", "set index.postgres"},
		{"storage:\n", "storagex:\n", "unknown key"},
		{"    bucket: wharf\n", "", "name the bucket"},
		{"    bucket: wharf\n", "    bucket: Wharf_Bucket\n", "not a valid bucket name"},
		{"endpoint: http://127.0.0.1:7070 ", "endpoint: 127.0.0.1:7070 ", "base URL"},
		{"endpoint: http://127.0.0.1:7070 ", "endpoint: http://127.0.0.1:7070/wharf ", "bucket goes in bucket:"},
		{"    access_key: KEY\n", "", "set the access key that goes with the secret key"},
		{"    secret_key: SECRET ", "    secret_key_env: X\n    secret_key: SECRET ", "only one of"},
		{"    secret_key: SECRET ", "    #", "set the secret key"},
		{"    prefix: prod/ ", "    prefix: /prod/ ", "must not start with /"},
		{"postgres: postgres://wharf:pw@", "postgres: mysql://wharf:pw@", "not a postgres:// URL"},
	} {
		y := strings.Replace(clusterContract, c.from, c.to, 1)
		if y == clusterContract {
			t.Fatalf("%q is not in the contract", c.from)
		}
		_, err := Parse([]byte(y))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("with %q → %q: error %v, want %q", c.from, c.to, err, c.want)
			continue
		}
		if strings.Contains(err.Error(), ":pw@") {
			t.Errorf("error shows the database password: %v", err)
		}
	}
	// Neither key: the AWS credential chain.
	y0 := strings.Replace(clusterContract, "    access_key: KEY\n", "", 1)
	y0 = regexp.MustCompile(`(?m)^    secret_key: .*\n`).ReplaceAllString(y0, "")
	if c, err := Parse([]byte(y0)); err != nil || c.Storage.S3.AccessKey != "" {
		t.Errorf("no keys (the AWS credential chain): %v", err)
	}
	// Only the S3 half.
	y := strings.Replace(clusterContract, "index:\n  postgres: postgres://wharf:pw@127.0.0.1:5432/wharf?sslmode=disable\n", "", 1)
	if _, err := Parse([]byte(y)); err == nil || !strings.Contains(err.Error(), "set index.postgres") {
		t.Errorf("s3 without postgres: %v", err)
	}
	// A prefix without its slash gets one: keys stay under it.
	y = strings.Replace(clusterContract, "prefix: prod/", "prefix: prod", 1)
	if c, err := Parse([]byte(y)); err != nil || c.Storage.S3.Prefix != "prod/" {
		t.Errorf("prefix without a slash: %v", err)
	}
}

// cluster.advertise is a base URL; omitted, the replica works it out.
func TestClusterAdvertise(t *testing.T) {
	for _, tc := range []struct{ v, want string }{
		{"http://10.0.0.5:5000", ""},
		{"https://wharf-0.wharf.svc:5000/", ""},
		{"10.0.0.5:5000", "cluster.advertise"},
		{"http://10.0.0.5:5000/v2", "cluster.advertise"},
		{"ftp://10.0.0.5", "cluster.advertise"},
	} {
		c, err := Parse([]byte(clusterContract + "cluster:\n  advertise: " + tc.v + "\n"))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.v, err)
		case tc.want == "" && c.Cluster.Advertise != tc.v:
			t.Errorf("%q: parsed as %q", tc.v, c.Cluster.Advertise)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: error %v, want one naming %s", tc.v, err, tc.want)
		}
	}
}
