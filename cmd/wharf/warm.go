package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/term"

	"github.com/wharf-registry/wharf/oci"
)

const warmSynopsis = `wharf warm IMAGE... [--url URL] [--platform OS/ARCH[/VARIANT]]

Fetches images into a running wharf's cache ahead of need, through its
registry API, as a pull would: every platform of a multi-platform image
unless --platform is given. IMAGE is written as you would pull it from
wharf: alpine:3.20, hub/library/golang:1.23, ghcr/org/app@sha256:...

Where pulls need a login (auth rules, anonymous_pull: false), pass
--username; the password comes from WHARF_PASSWORD, or from stdin with
--password-stdin, or is asked for on a terminal:

  echo "$PW" | wharf warm --username ci --password-stdin team/app:1.4`

func cmdWarm(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("warm", warmSynopsis, stderr)
	cfgPath := fs.String("config", os.Getenv("WHARF_CONFIG"), "config `file` to find the server's listen address")
	baseURL := fs.String("url", "", "the server's `URL` (default: from --config, else http://127.0.0.1:5000)")
	platform := fs.String("platform", "", "only this `platform` of multi-platform images, e.g. linux/amd64")
	username := fs.String("username", os.Getenv("WHARF_USERNAME"), "log in as this `user` (env WHARF_USERNAME)")
	fs.StringVar(username, "u", *username, "short for --username")
	pwStdin := fs.Bool("password-stdin", false, "read the password from stdin (else WHARF_PASSWORD, else a prompt)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageError{errors.New("warm needs at least one IMAGE")}
	}
	u, hc, err := serverClient(*baseURL, *cfgPath)
	if err != nil {
		return err
	}
	w := &warmer{base: strings.TrimRight(u, "/"), platform: *platform, out: stdout, errOut: stderr,
		hc: hc, start: time.Now()}
	switch {
	case *username != "":
		pw, err := loginPassword(*username, *pwStdin, stderr)
		if err != nil {
			return err
		}
		w.login = &authn.Basic{Username: *username, Password: pw}
	case *pwStdin:
		return usageError{errors.New("--password-stdin needs --username")}
	}
	var failed []string
	for _, img := range fs.Args() {
		if err := w.image(img); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", img, err)
			failed = append(failed, img)
		}
	}
	fmt.Fprintf(stdout, "warmed %d of %d images: %d manifests, %d blobs, %s in %s\n",
		len(fs.Args())-len(failed), len(fs.Args()), w.manifests, w.blobs, humanBytes(w.bytes), time.Since(w.start).Round(100*time.Millisecond))
	if len(failed) > 0 {
		return fmt.Errorf("could not warm %s", strings.Join(failed, ", "))
	}
	return nil
}

type warmer struct {
	base, platform   string
	out, errOut      io.Writer
	hc               *http.Client // for the image being warmed: logged in to its repository with login
	login            authn.Authenticator
	start            time.Time
	manifests, blobs int
	bytes            int64
	seen             map[string]bool
}

var manifestAccept = strings.Join([]string{oci.MediaTypeOCIIndex, oci.MediaTypeDockerList, oci.MediaTypeOCIManifest, oci.MediaTypeDockerManifest}, ", ")

func (w *warmer) image(img string) error {
	name, ref := img, "latest"
	if i := strings.Index(img, "@"); i >= 0 {
		name, ref = img[:i], img[i+1:]
	} else if i := strings.LastIndex(img, ":"); i > 0 && !strings.Contains(img[i:], "/") {
		name, ref = img[:i], img[i+1:]
	}
	if err := oci.ValidateName(name); err != nil {
		return err
	}
	if w.seen == nil {
		w.seen = map[string]bool{}
	}
	if w.login != nil {
		hc, err := w.loggedIn(name)
		if err != nil {
			return err
		}
		defer func(prev *http.Client) { w.hc = prev }(w.hc)
		w.hc = hc
	}
	fmt.Fprintf(w.out, "%s:\n", img)
	return w.manifest(name, ref, "")
}

// loggedIn returns a client holding a pull token for repository name,
// obtained as docker does: the server's Bearer challenge, then its token
// service with the user's password. A server that asks for no login is
// used as it is.
func (w *warmer) loggedIn(repo string) (*http.Client, error) {
	u, err := url.Parse(w.base)
	if err != nil {
		return nil, err
	}
	var opts []name.Option
	if u.Scheme == "http" {
		opts = append(opts, name.Insecure)
	}
	r, err := name.NewRepository(u.Host+"/"+repo, opts...)
	if err != nil {
		return nil, err
	}
	base := w.hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	rt, err := transport.NewWithContext(context.Background(), r.Registry, w.login, base, []string{r.Scope(transport.PullScope)})
	if err != nil {
		var te *transport.Error
		if errors.As(err, &te) && te.StatusCode == http.StatusUnauthorized {
			return nil, fmt.Errorf("wharf at %s refused the login: check the user name and password", w.base)
		}
		return nil, fmt.Errorf("logging in to wharf at %s: %w", w.base, err)
	}
	return &http.Client{Transport: rt}, nil
}

// loginPassword reads the password for user: stdin when asked, else
// WHARF_PASSWORD, else a prompt on a terminal.
func loginPassword(user string, fromStdin bool, stderr io.Writer) (string, error) {
	if !fromStdin {
		if pw := os.Getenv("WHARF_PASSWORD"); pw != "" {
			return pw, nil
		}
		f, ok := stdin.(*os.File)
		if !ok || !term.IsTerminal(int(f.Fd())) {
			return "", usageError{errors.New("no password for " + user + ": set WHARF_PASSWORD or pass --password-stdin")}
		}
		fmt.Fprintf(stderr, "Password for %s: ", user)
		pw, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		return string(pw), err
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", errors.New("no password on stdin; pipe one in: echo \"$PW\" | wharf warm --username " + user + " --password-stdin IMAGE")
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func (w *warmer) manifest(name, ref, label string) error {
	req, _ := http.NewRequest(http.MethodGet, w.base+"/v2/"+name+"/manifests/"+ref, nil)
	req.Header.Set("Accept", manifestAccept)
	resp, err := w.hc.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach wharf at %s: %w", w.base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, oci.MaxManifestSize+1))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("manifest %s: %s", ref, ociMessage(resp.StatusCode, body))
		if resp.StatusCode == http.StatusUnauthorized && w.login == nil {
			err = fmt.Errorf("%w; this repository needs a login: pass --username (and WHARF_PASSWORD or --password-stdin)", err)
		}
		return err
	}
	w.manifests++
	m, err := oci.ParseManifest(resp.Header.Get("Content-Type"), body)
	if err != nil {
		return err
	}
	if oci.IsIndex(m.MediaType) {
		n := 0
		for _, c := range m.Manifests {
			p := c.Platform
			plat := "unknown"
			if p != nil {
				plat = p.OS + "/" + p.Architecture
				if p.Variant != "" {
					plat += "/" + p.Variant
				}
			}
			if w.platform != "" && !strings.HasPrefix(plat, w.platform) {
				continue
			}
			if plat == "unknown/unknown" && w.platform == "" {
				continue // attestation manifests: not part of what a pull needs
			}
			n++
			if err := w.manifest(name, string(c.Digest), plat); err != nil {
				return err
			}
		}
		if n == 0 {
			return fmt.Errorf("no platform matches %q", w.platform)
		}
		return nil
	}
	if label != "" {
		fmt.Fprintf(w.out, "  %s\n", label)
	}
	for _, d := range m.References() {
		if len(d.URLs) > 0 {
			continue
		}
		if err := w.blob(name, d); err != nil {
			return err
		}
	}
	return nil
}

func (w *warmer) blob(name string, d oci.Descriptor) error {
	if w.seen[string(d.Digest)] {
		return nil
	}
	resp, err := w.hc.Get(w.base + "/v2/" + name + "/blobs/" + string(d.Digest))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("blob %s: %s", short(string(d.Digest)), ociMessage(resp.StatusCode, b))
	}
	bar := newProgress(w.errOut, "    "+short(string(d.Digest)))
	h := d.Digest.NewHash()
	buf := make([]byte, 1<<20)
	var n int64
	for {
		k, rerr := resp.Body.Read(buf)
		if k > 0 {
			h.Write(buf[:k])
			n += int64(k)
			bar.update(n, d.Size)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			bar.done()
			return fmt.Errorf("blob %s: %w", short(string(d.Digest)), rerr)
		}
	}
	bar.done()
	if got := oci.FromHash(d.Digest.Algorithm(), h); got != d.Digest {
		return fmt.Errorf("blob %s arrived with digest %s", d.Digest, got)
	}
	if !bar.tty {
		fmt.Fprintf(w.out, "    %s %s\n", short(string(d.Digest)), humanBytes(n))
	}
	w.seen[string(d.Digest)] = true
	w.blobs++
	w.bytes += n
	return nil
}

// ociMessage turns an OCI error body into one line.
func ociMessage(status int, body []byte) string {
	if code, msg, ok := oci.ParseEnvelope(body); ok {
		return fmt.Sprintf("%s: %s (HTTP %d)", code, msg, status)
	}
	return fmt.Sprintf("HTTP %d", status)
}
