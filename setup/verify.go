package setup

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// pollEvery is how often a wait looks again at the state it waits for.
const pollEvery = 200 * time.Millisecond

// DockerAPI talks to a Docker daemon's API socket with net/http.
type DockerAPI struct {
	hc   *http.Client
	base string
}

// NewDockerAPI reads a DOCKER_HOST value: unix:///PATH or tcp://HOST:PORT.
func NewDockerAPI(host string) (*DockerAPI, error) {
	u, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("docker host %q: %w", host, err)
	}
	switch u.Scheme {
	case "unix":
		sock := u.Path
		tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}}
		return &DockerAPI{hc: &http.Client{Transport: tr}, base: "http://docker"}, nil
	case "tcp", "http":
		return &DockerAPI{hc: &http.Client{}, base: "http://" + u.Host}, nil
	}
	return nil, fmt.Errorf("docker host %q: want unix:///PATH or tcp://HOST:PORT", host)
}

// Mirrors is `docker info`'s registry mirrors, without trailing slashes.
func (d *DockerAPI) Mirrors(ctx context.Context) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.base+"/info", nil)
	if err != nil {
		return nil, err
	}
	resp, err := d.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("the Docker daemon does not answer: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("docker info: %s", resp.Status)
	}
	var info struct {
		RegistryConfig struct{ Mirrors []string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		return nil, fmt.Errorf("docker info: %w", err)
	}
	out := make([]string, 0, len(info.RegistryConfig.Mirrors))
	for _, m := range info.RegistryConfig.Mirrors {
		out = append(out, strings.TrimRight(m, "/"))
	}
	return out, nil
}

// WaitMirror waits until the daemon lists mirror, or ctx ends.
func (d *DockerAPI) WaitMirror(ctx context.Context, mirror string) error {
	mirror = strings.TrimRight(mirror, "/")
	var last []string
	var lastErr error
	for {
		last, lastErr = d.Mirrors(ctx)
		if lastErr == nil && slices.Contains(last, mirror) {
			return nil
		}
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return lastErr
			}
			return fmt.Errorf("the Docker daemon still lists registry mirrors %q, not %s: it did not reload the file, or reads another one", last, mirror)
		case <-time.After(pollEvery):
		}
	}
}

// Pull pulls img through the daemon, like `docker pull`.
func (d *DockerAPI) Pull(ctx context.Context, img Image) error {
	q := url.Values{"fromImage": {"docker.io/" + img.Repo}, "tag": {img.Tag}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.base+"/images/create?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := d.hc.Do(req)
	if err != nil {
		return fmt.Errorf("the Docker daemon does not answer: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var m struct{ Message string }
		if json.Unmarshal(b, &m) == nil && m.Message != "" {
			return errors.New(m.Message)
		}
		return fmt.Errorf("docker pull %s: %s", img, resp.Status)
	}
	// The answer is a stream of progress messages; a failure is a message
	// with "error", after a 200.
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var m struct{ Error string }
		if json.Unmarshal(sc.Bytes(), &m) == nil && m.Error != "" {
			return errors.New(m.Error)
		}
	}
	return sc.Err()
}

// WharfPulls reads a wharf server's GET /-/pulls.
type WharfPulls struct {
	HC   *http.Client
	Base string // the mirror URL
}

type pullsReport struct {
	Last  uint64 `json:"last"`
	Pulls []struct {
		Repo string `json:"repo"`
	} `json:"pulls"`
}

func (w WharfPulls) get(ctx context.Context, after uint64) (pullsReport, error) {
	var r pullsReport
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/-/pulls?after=%d", w.Base, after), nil)
	if err != nil {
		return r, err
	}
	resp, err := w.HC.Do(req)
	if err != nil {
		return r, fmt.Errorf("wharf at %s does not answer: %w", w.Base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return r, fmt.Errorf("%s/-/pulls answered %s: not a wharf that can show its pulls (older than this wharf setup?)", w.Base, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return r, fmt.Errorf("%s/-/pulls: %w", w.Base, err)
	}
	return r, nil
}

// Mark is the sequence number of wharf's latest pull: pulls after it came
// after this call.
func (w WharfPulls) Mark(ctx context.Context) (uint64, error) {
	r, err := w.get(ctx, 0)
	return r.Last, err
}

// WaitPull waits until wharf lists a pull of repo after mark, or ctx ends
// (false). The pull is listed when wharf has answered it, which may be a
// moment after the client got the answer.
func (w WharfPulls) WaitPull(ctx context.Context, mark uint64, repo string) (bool, error) {
	for {
		r, err := w.get(ctx, mark)
		if err != nil {
			return false, err
		}
		for _, p := range r.Pulls {
			// A proxy served under a prefix lists the name with it.
			if p.Repo == repo || strings.HasSuffix(p.Repo, "/"+repo) {
				return true, nil
			}
		}
		select {
		case <-ctx.Done():
			return false, nil
		case <-time.After(pollEvery):
		}
	}
}

// ErrNotUsed means the client's pull did not go through wharf.
var ErrNotUsed = errors.New("the mirror is not used")

// ProveDocker pulls img through the daemon and returns nil only when wharf
// saw the pull: a daemon that cannot reach the mirror falls back to Docker
// Hub, so a pull that works proves nothing by itself. wait bounds how long
// wharf may take to list the pull after the daemon is done.
func ProveDocker(ctx context.Context, d *DockerAPI, w WharfPulls, img Image, wait time.Duration) error {
	mark, err := w.Mark(ctx)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotUsed, err)
	}
	pullErr := d.Pull(ctx, img)
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	seen, err := w.WaitPull(wctx, mark, img.Repo)
	switch {
	case err != nil:
		return fmt.Errorf("%w: %v", ErrNotUsed, err)
	case !seen && pullErr != nil:
		return fmt.Errorf("%w: wharf saw no pull of %s, and the daemon's pull failed: %v", ErrNotUsed, img, pullErr)
	case !seen:
		return fmt.Errorf("%w: the daemon pulled %s without asking wharf (from Docker Hub directly?)", ErrNotUsed, img)
	case pullErr != nil:
		return fmt.Errorf("wharf served %s's manifest but the daemon's pull failed: %v", img, pullErr)
	}
	return nil
}

// ProveResolve asks wharf itself, as containerd and podman would, for
// img's manifest under ns (containerd's ?ns=HOST): it proves wharf serves
// the host's images, not that a client uses it; only a pull by the client
// can prove that, and containerd and podman have no API setup could ask.
func ProveResolve(ctx context.Context, hc *http.Client, mirror, ns string, img Image) error {
	u := fmt.Sprintf("%s/v2/%s/manifests/%s?ns=%s", strings.TrimRight(mirror, "/"), img.Repo, img.Tag, url.QueryEscape(ns))
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", strings.Join([]string{
		"application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json",
		"application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json",
	}, ", "))
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%w: wharf at %s does not answer: %v", ErrNotUsed, mirror, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: wharf answered %s for %s (HEAD %s)", ErrNotUsed, resp.Status, img, u)
	}
	return nil
}
