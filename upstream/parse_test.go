package upstream

import (
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseChallenges(t *testing.T) {
	tests := []struct {
		in     []string
		scheme string
		params map[string]string
	}{
		{[]string{`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"`},
			"bearer", map[string]string{"realm": "https://auth.docker.io/token", "service": "registry.docker.io", "scope": "repository:library/busybox:pull"}},
		{[]string{`Bearer realm="https://a/token",service="s",scope="repository:x:pull",error="insufficient_scope"`},
			"bearer", map[string]string{"realm": "https://a/token", "service": "s", "scope": "repository:x:pull", "error": "insufficient_scope"}},
		{[]string{`Basic realm="Registry Realm"`}, "basic", map[string]string{"realm": "Registry Realm"}},
		{[]string{`Negotiate`, `Basic realm=x`}, "basic", map[string]string{"realm": "x"}},
		{[]string{`Basic realm="b", Bearer realm="https://a", service="s"`}, "bearer", map[string]string{"realm": "https://a", "service": "s"}},
		{[]string{`bearer REALM = "https://a/\"q\"" , service=s`}, "bearer", map[string]string{"realm": `https://a/"q"`, "service": "s"}},
		{[]string{`Bearer scope="repository:a:pull,push"`}, "bearer", map[string]string{"scope": "repository:a:pull,push"}},
		{[]string{``}, "", nil},
		{[]string{`Negotiate abc==`}, "", nil},
		{[]string{`=,,"`}, "", nil},
	}
	for _, tt := range tests {
		ch, ok := parseChallenges(tt.in)
		if ok != (tt.scheme != "") || ch.scheme != tt.scheme || (ok && !maps.Equal(ch.params, tt.params)) {
			t.Errorf("parseChallenges(%q) = %+v %v, want %s %v", tt.in, ch, ok, tt.scheme, tt.params)
		}
	}
}

func TestNextLast(t *testing.T) {
	tests := map[string]string{
		`</v2/library/busybox/tags/list?last=1.36&n=100>; rel="next"`:                             "1.36",
		`</v2/x/tags/list?n=2&last=a%2Bb>; rel=next`:                                              "a+b",
		`<https://other/v2/x/tags/list?last=z>; rel="prev", </v2/x/tags/list?last=q>; rel="next"`: "q",
		`</v2/x/tags/list?last=z>; rel="prev"`:                                                    "",
		``:                                                                                        "",
		`garbage`:                                                                                 "",
	}
	for in, want := range tests {
		if got := nextLast([]string{in}); got != want {
			t.Errorf("nextLast(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseQuota(t *testing.T) {
	tests := []struct {
		in     string
		n      int
		window time.Duration
		ok     bool
	}{
		{"100;w=21600", 100, 6 * time.Hour, true},
		{"76;w=21600", 76, 6 * time.Hour, true},
		{"0", 0, 0, true},
		{"", -1, 0, false},
		{"x;w=1", -1, 0, false},
	}
	for _, tt := range tests {
		n, w, ok := parseQuota(tt.in)
		if n != tt.n || w != tt.window || ok != tt.ok {
			t.Errorf("parseQuota(%q) = %d %v %v", tt.in, n, w, ok)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := map[string]time.Duration{
		"":                              0,
		"7":                             7 * time.Second,
		"-3":                            0,
		"soon":                          0,
		"Wed, 01 Jan 2025 00:01:00 GMT": time.Minute,
		"Tue, 31 Dec 2024 00:00:00 GMT": 0,
	}
	for in, want := range tests {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in           string
		start, total int64
		ok           bool
	}{
		{"bytes 100-999/1000", 100, 1000, true},
		{"bytes 0-0/*", 0, -1, true},
		{"bytes 5-4/10", 0, 0, false},
		{"bytes 0-10/10", 0, 0, false},
		{"items 0-1/2", 0, 0, false},
		{"", 0, 0, false},
	}
	for _, tt := range tests {
		s, total, ok := parseContentRange(tt.in)
		if s != tt.start || total != tt.total || ok != tt.ok {
			t.Errorf("parseContentRange(%q) = %d %d %v", tt.in, s, total, ok)
		}
	}
}

func TestRepoNames(t *testing.T) {
	hub := &Client{dockerHub: true}
	plain := &Client{}
	tests := []struct {
		in, hub, plain string // "" means invalid
	}{
		{"busybox", "library/busybox", "busybox"},
		{"library/busybox", "library/busybox", "library/busybox"},
		{"bitnami/redis", "bitnami/redis", "bitnami/redis"},
		{"a/b/c", "a/b/c", "a/b/c"},
		{"my_app.v2-x", "library/my_app.v2-x", "my_app.v2-x"},
		{"a__b", "library/a__b", "a__b"},
		{"Busybox", "", ""},
		{"a//b", "", ""},
		{"../etc", "", ""},
		{"a/", "", ""},
		{"-a", "", ""},
		{"a___b", "", ""},
		{strings.Repeat("a", 256), "", ""},
	}
	for _, tt := range tests {
		for _, cc := range []struct {
			c    *Client
			want string
		}{{hub, tt.hub}, {plain, tt.plain}} {
			got, err := cc.c.repoName("test", tt.in)
			if tt.hub == "" {
				if !IsInvalid(err) {
					t.Errorf("repoName(%q) = %q, %v; want Invalid", tt.in, got, err)
				}
				continue
			}
			if err != nil || got != cc.want {
				t.Errorf("repoName(%q) dockerHub=%v = %q, %v; want %q", tt.in, cc.c.dockerHub, got, err, cc.want)
			}
		}
	}
}

func TestErrorString(t *testing.T) {
	e := &Error{Kind: NotFound, Upstream: "hub", Op: "GET manifest library/busybox:nope", Status: 404, Code: "MANIFEST_UNKNOWN", Message: "manifest unknown"}
	want := "upstream hub: GET manifest library/busybox:nope: not found (HTTP 404 MANIFEST_UNKNOWN): manifest unknown"
	if e.Error() != want {
		t.Errorf("Error() = %q\nwant      %q", e.Error(), want)
	}
}

// TestDependencies keeps the package near the bottom of the import graph:
// the standard library, wharf's oci, go-containerregistry and golang.org/x
// only.
func TestDependencies(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			first, _, _ := strings.Cut(path, "/")
			switch {
			case !strings.Contains(first, "."): // standard library
			case strings.HasPrefix(path, "github.com/google/go-containerregistry/"):
			case strings.HasPrefix(path, "golang.org/x/"):
			case path == "github.com/wharf-registry/wharf/oci":
			default:
				t.Errorf("%s imports %s", name, path)
			}
		}
	}
}
