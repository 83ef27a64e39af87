package settings_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/wharf-registry/wharf/gui/settings"
)

// The Registries screen adds ghcr.io with credentials: the password goes
// to a file beside the config, and Save says the change waits for a restart.
func Example() {
	dir, _ := os.MkdirTemp("", "wharf-settings")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "wharf.yml")
	os.WriteFile(path, []byte("# my registry\nhosted:\n  - name: team\n"), 0o644)

	doc, err := settings.Load(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	ghcr := settings.Presets()[1]
	if err := doc.AddProxy(settings.Proxy{Name: ghcr.Name, Upstream: ghcr.Upstream, Username: "me", Password: "token"}); err != nil {
		fmt.Println(err)
		return
	}
	if err := doc.AddProxy(settings.Proxy{Name: "ghcr", Upstream: "https://ghcr.io"}); err != nil {
		fmt.Println(err)
	}
	change, err := doc.Save()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(change)
	fmt.Println(doc.Config().Proxies[0].PasswordFile == filepath.Join(filepath.Dir(doc.Path()), "wharf.proxy-ghcr.password"))
	// Output:
	// a proxy named "ghcr" already exists; pick another name
	// applies after a restart (proxies)
	// true
}
