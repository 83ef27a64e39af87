package config

import (
	"fmt"
	"net/url"
	"os"
	"strings"
)

// Storage chooses where committed blobs live. Empty: the filesystem
// under data_dir, as always.
type Storage struct {
	S3 *S3 `yaml:"s3,omitempty"`
}

// S3 keeps blobs in any S3-compatible object store (cluster mode, with
// index.postgres). The bucket must exist.
type S3 struct {
	// Endpoint is the store's URL, e.g. http://127.0.0.1:7070 (addressed
	// path-style: http://HOST:PORT/BUCKET/KEY). Omitted: AWS S3.
	Endpoint string `yaml:"endpoint,omitempty"`
	// Region defaults to us-east-1.
	Region string `yaml:"region,omitempty"`
	Bucket string `yaml:"bucket"`
	// Prefix puts every key under it (e.g. prod/), so that several wharf
	// clusters can share a bucket.
	Prefix string `yaml:"prefix,omitempty"`
	// AccessKey and the secret key sign requests. Both omitted: the AWS
	// credential chain (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, the
	// shared credentials file, then an EC2, ECS or EKS role).
	AccessKey string `yaml:"access_key,omitempty"`
	// The secret key: set one of these three.
	SecretKey     string `yaml:"secret_key,omitempty"`
	SecretKeyEnv  string `yaml:"secret_key_env,omitempty"`
	SecretKeyFile string `yaml:"secret_key_file,omitempty"`
	// Redirect answers blob GETs with a redirect to a presigned URL, so
	// the bytes go from the store to the client directly.
	Redirect bool `yaml:"redirect,omitempty"`
}

// Index chooses where metadata lives. Empty: Badger under data_dir.
type Index struct {
	// Postgres is a connection URL, e.g.
	// postgres://wharf:pw@db:5432/wharf?sslmode=disable. The role must be
	// able to create tables in the database (owning it does).
	Postgres string `yaml:"postgres,omitempty"`
}

// Cluster is how the replicas of a cluster reach each other: a replica
// that misses a blob another replica is fetching streams it from that one.
type Cluster struct {
	// Advertise is the base URL other replicas reach this one at, e.g.
	// http://10.0.0.5:5000. Omitted: the address listen bound, or when
	// its host is unspecified (:5000) the first non-loopback address.
	Advertise string `yaml:"advertise,omitempty"`
}

// Clustered reports whether blobs and metadata live in shared engines
// (S3 and PostgreSQL), so that several replicas can serve together;
// data_dir is then only each replica's scratch area for fills.
func (c *Config) Clustered() bool { return c.Storage.S3 != nil && c.Index.Postgres != "" }

// ResolveSecretKey returns the S3 secret key from whichever source is set.
func (s S3) ResolveSecretKey() (string, error) {
	switch {
	case s.SecretKeyFile != "":
		b, err := os.ReadFile(s.SecretKeyFile)
		if err != nil {
			return "", fmt.Errorf("storage.s3: reading secret_key_file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	case s.SecretKeyEnv != "":
		v, ok := os.LookupEnv(s.SecretKeyEnv)
		if !ok {
			return "", fmt.Errorf("storage.s3: environment variable %s (secret_key_env) is not set", s.SecretKeyEnv)
		}
		return v, nil
	}
	return s.SecretKey, nil
}

func (c *Config) clusterDefaults() {
	if s := c.Storage.S3; s != nil {
		if s.Region == "" {
			s.Region = "us-east-1"
		}
		if s.Prefix != "" && !strings.HasSuffix(s.Prefix, "/") {
			s.Prefix += "/"
		}
	}
}

func (c *Config) validateCluster(add func(key, format string, args ...any)) {
	s := c.Storage.S3
	switch {
	case s != nil && c.Index.Postgres == "":
		add("storage.s3", "blobs in S3 need the metadata in PostgreSQL too: set index.postgres (cluster mode), or remove storage.s3 to keep everything under data_dir")
	case s == nil && c.Index.Postgres != "":
		add("index.postgres", "metadata in PostgreSQL needs the blobs in S3 too: set storage.s3 (cluster mode), or remove index.postgres to keep everything under data_dir")
	}
	if s != nil {
		if s.Endpoint != "" {
			u, err := url.Parse(s.Endpoint)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
				add("storage.s3.endpoint", "%q is not a store's base URL like http://127.0.0.1:7070 or https://s3.example.org (the bucket goes in bucket:)", s.Endpoint)
			}
		}
		if s.Bucket == "" {
			add("storage.s3.bucket", "name the bucket the blobs go in (it must exist)")
		} else if !validBucket(s.Bucket) {
			add("storage.s3.bucket", "%q is not a valid bucket name (3-63 of a-z, 0-9, '.', '-')", s.Bucket)
		}
		if strings.HasPrefix(s.Prefix, "/") || strings.Contains(s.Prefix, "//") {
			add("storage.s3.prefix", "%q must not start with / or contain //, e.g. prod/", s.Prefix)
		}
		n := 0
		for _, v := range []string{s.SecretKey, s.SecretKeyEnv, s.SecretKeyFile} {
			if v != "" {
				n++
			}
		}
		switch {
		case s.AccessKey == "" && n > 0:
			add("storage.s3.access_key", "set the access key that goes with the secret key (or neither, for the AWS credential chain)")
		case s.AccessKey != "" && n == 0:
			add("storage.s3", "set the secret key: secret_key, secret_key_env (the name of an environment variable) or secret_key_file (or neither key, for the AWS credential chain)")
		case n > 1:
			add("storage.s3", "set only one of secret_key, secret_key_env and secret_key_file")
		}
	}
	if a := c.Cluster.Advertise; a != "" {
		u, err := url.Parse(a)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			add("cluster.advertise", "%q is not a base URL other replicas reach this one at, like http://10.0.0.5:5000", a)
		}
	}
	if p := c.Index.Postgres; p != "" && strings.Contains(p, "://") {
		u, err := url.Parse(p)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			add("index.postgres", "%q is not a postgres:// URL like postgres://wharf:PASSWORD@db:5432/wharf?sslmode=disable", redactURL(p))
		}
	}
}

func validBucket(b string) bool {
	if len(b) < 3 || len(b) > 63 {
		return false
	}
	for _, r := range b {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-') {
			return false
		}
	}
	return true
}

// redactURL masks a URL's password for messages and Sanitize.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "******")
	}
	return u.String()
}

func (c *Config) sanitizeCluster(cp *Config) {
	if s := c.Storage.S3; s != nil {
		sc := *s
		if sc.SecretKey != "" {
			sc.SecretKey = "******"
		}
		cp.Storage.S3 = &sc
	}
	cp.Index.Postgres = redactURL(c.Index.Postgres)
}
