package main

import (
	"encoding/xml"
	"os"
	"testing"
)

// TestPolkitPolicy: the action the desktop app runs `pkexec wharf setup
// ... --apply` under is well-formed and names the packaged binary, which
// is where packaging/systemd/wharf.service runs it from too.
func TestPolkitPolicy(t *testing.T) {
	b, err := os.ReadFile("../../packaging/polkit/org.wharf.setup.policy")
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		XMLName xml.Name `xml:"policyconfig"`
		Actions []struct {
			ID          string `xml:"id,attr"`
			Description string `xml:"description"`
			Message     string `xml:"message"`
			Defaults    struct {
				Active string `xml:"allow_active"`
			} `xml:"defaults"`
			Annotate []struct {
				Key   string `xml:"key,attr"`
				Value string `xml:",chardata"`
			} `xml:"annotate"`
		} `xml:"action"`
	}
	if err := xml.Unmarshal(b, &p); err != nil {
		t.Fatalf("not well-formed: %v", err)
	}
	if len(p.Actions) != 1 || p.Actions[0].ID != "org.wharf.setup" {
		t.Fatalf("actions: %+v", p.Actions)
	}
	a := p.Actions[0]
	if a.Description == "" || a.Message == "" || a.Defaults.Active == "" {
		t.Errorf("action lacks a description, message or default: %+v", a)
	}
	exec := ""
	for _, an := range a.Annotate {
		if an.Key == "org.freedesktop.policykit.exec.path" {
			exec = an.Value
		}
	}
	if exec != "/usr/bin/wharf" {
		t.Errorf("exec.path %q, want /usr/bin/wharf", exec)
	}
}
