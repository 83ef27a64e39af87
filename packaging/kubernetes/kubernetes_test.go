package kubernetes

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/wharf-registry/wharf/config"
)

// TestManifests: every document parses; the config in the Secret is a
// valid cluster-mode config; the Deployment's probes, port, secret
// variable and mounts match it.
func TestManifests(t *testing.T) {
	b, err := os.ReadFile("wharf.yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string]map[string]any{}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var d map[string]any
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		docs[d["kind"].(string)] = d
	}
	for _, k := range []string{"Secret", "Deployment", "Service"} {
		if docs[k] == nil {
			t.Fatalf("no %s in wharf.yaml", k)
		}
	}
	data := docs["Secret"]["stringData"].(map[string]any)
	t.Setenv("WHARF_S3_SECRET", data["s3-secret"].(string))
	cfg, err := config.Parse([]byte(data["wharf.yml"].(string)))
	if err != nil {
		t.Fatalf("the config in the Secret: %v", err)
	}
	if !cfg.Clustered() || cfg.Storage.S3.SecretKeyEnv != "WHARF_S3_SECRET" || cfg.DataDir != "/data" || cfg.Listen != ":5000" {
		t.Errorf("config: clustered %v, secret_key_env %q, data_dir %q, listen %q", cfg.Clustered(), cfg.Storage.S3.SecretKeyEnv, cfg.DataDir, cfg.Listen)
	}
	if _, err := cfg.Storage.S3.ResolveSecretKey(); err != nil {
		t.Error(err)
	}

	spec := docs["Deployment"]["spec"].(map[string]any)
	if spec["replicas"] != 3 {
		t.Errorf("replicas = %v, want 3", spec["replicas"])
	}
	pod := spec["template"].(map[string]any)["spec"].(map[string]any)
	c := pod["containers"].([]any)[0].(map[string]any)
	probe := c["readinessProbe"].(map[string]any)["httpGet"].(map[string]any)
	if probe["path"] != "/readyz" {
		t.Errorf("readiness probe on %v, want /readyz", probe["path"])
	}
	port := c["ports"].([]any)[0].(map[string]any)["containerPort"]
	if !strings.HasSuffix(cfg.Listen, ":"+strings.TrimSpace(yamlString(port))) {
		t.Errorf("container port %v is not the config's listen %s", port, cfg.Listen)
	}
	env := c["env"].([]any)[0].(map[string]any)
	if env["name"] != cfg.Storage.S3.SecretKeyEnv {
		t.Errorf("the container sets %v, the config reads %s", env["name"], cfg.Storage.S3.SecretKeyEnv)
	}
	mounts := map[string]string{}
	for _, m := range c["volumeMounts"].([]any) {
		mm := m.(map[string]any)
		mounts[mm["mountPath"].(string)] = mm["name"].(string)
	}
	if mounts["/etc/wharf"] != "config" || mounts[cfg.DataDir] != "scratch" {
		t.Errorf("mounts %v: want the config at /etc/wharf (the image's WHARF_CONFIG dir) and scratch at data_dir", mounts)
	}
	svc := docs["Service"]["spec"].(map[string]any)
	if sel := svc["selector"].(map[string]any); sel["app"] != "wharf" {
		t.Errorf("Service selects %v", sel)
	}
	if a, ok := svc["sessionAffinity"]; ok && a != "None" {
		t.Errorf("Service sessionAffinity = %v: replicas forward uploads to each other, and affinity would pin each build host to one replica", a)
	}
}

func yamlString(v any) string {
	b, _ := yaml.Marshal(v)
	return string(b)
}
