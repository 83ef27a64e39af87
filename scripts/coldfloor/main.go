//go:build linux

// Command coldfloor measures how far a cold pull through a verifying
// mirror can come to a direct pull on this machine, and where wharf and
// Distribution's proxy are, with the CPU-seconds each spends per GiB.
//
//	make build && go run ./scripts/coldfloor [-mib 512] [-rounds 3]
//
// It starts a Distribution registry (docker-registry) as the origin with
// one random blob, and in front of it a relay that copies every byte, as
// ../shared/bench does. Each round then GETs the blob, hashing it as the
// bench's client does:
//
//   - direct: through the relay;
//   - ideal:  through the least a mirror that never releases unverified
//     bytes can do: this program, streaming the upstream body to the
//     client, hashing it on a goroutine of its own and holding the last
//     byte back until the digest matched. No disk, no index, no cache;
//   - distribution: through docker-registry in proxy mode, started empty;
//   - wharf:  through a wharf started empty (bin/wharf, or -wharf).
//
// For each it prints the wall time, the ratio to direct, the CPU-seconds
// the whole machine spent during the pull (/proc/stat) and how busy that
// kept the cores, and the mirror's own CPU-seconds per GiB, counted until
// it has stored the blob (Distribution fetches it a second time for that,
// after the client's response). When the direct pull alone keeps the
// cores busy, a mirror's ratio cannot go below (direct's machine CPU +
// the mirror's own CPU) ÷ cores ÷ direct's wall time, whatever its design.
package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/wharf-registry/wharf/internal/procnet"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "ideal" {
		ideal(os.Args[2])
		return
	}
	mib := flag.Int("mib", 512, "blob size in MiB")
	rounds := flag.Int("rounds", 3, "rounds (each starts the mirrors empty)")
	wharf := flag.String("wharf", "bin/wharf", "the wharf binary")
	flag.Parse()
	log.SetFlags(0)
	if _, err := exec.LookPath("docker-registry"); err != nil {
		log.Fatal("coldfloor needs docker-registry (apt-get install docker-registry)")
	}
	dir, err := os.MkdirTemp("", "coldfloor-")
	check(err)
	defer os.RemoveAll(dir)

	origin := startOrigin(dir)
	defer origin.Process.Kill()
	originURL := "http://" + listenAddr(origin.Process.Pid)
	digest := pushBlob(originURL, int64(*mib)<<20)
	relayURL := startRelay(originURL)
	path := "/v2/bench/cold/blobs/" + digest

	self, err := os.Executable()
	check(err)
	sha := "no"
	if b, _ := os.ReadFile("/proc/cpuinfo"); bytes.Contains(b, []byte(" sha_ni")) {
		sha = "sha_ni"
	}
	fmt.Printf("blob %d MiB, %d cores, %s; ratio = time ÷ direct; busy = machine CPU ÷ (cores × time)\n", *mib, runtime.NumCPU(), sha)
	fmt.Printf("%-5s %-12s %8s %7s %13s %6s %14s\n", "round", "target", "time_s", "ratio", "machine_cpu_s", "busy", "own_cpu_s/GiB")
	pull(relayURL+path, digest) // the origin's page cache warm for every round
	for r := 1; r <= *rounds; r++ {
		d := pull(relayURL+path, digest)
		row(r, "direct", d, d, 0)
		for _, m := range []struct{ name, bin string }{{"ideal", self}, {"distribution", "docker-registry"}, {"wharf", *wharf}} {
			mdir := filepath.Join(dir, fmt.Sprintf("%s%d", m.name, r))
			check(os.MkdirAll(mdir, 0o755))
			cmd, addr, cached := startMirror(m.name, m.bin, mdir, relayURL)
			c0 := procCPU(cmd.Process.Pid)
			p := pull("http://"+addr+path, digest)
			switch m.name {
			case "wharf":
				<-cached // its fsync and commit done: the next round starts on a quiet disk
			case "distribution":
				settle(cmd.Process.Pid) // its second fetch, to store the blob
			}
			own := (procCPU(cmd.Process.Pid) - c0) * 1024 / float64(*mib)
			cmd.Process.Kill()
			cmd.Wait()
			row(r, m.name, p, d, own)
		}
	}
}

// settle waits until process pid has stopped using CPU: nothing else
// tells when Distribution's proxy has finished storing a blob.
func settle(pid int) {
	for prev := procCPU(pid); ; {
		time.Sleep(300 * time.Millisecond)
		now := procCPU(pid)
		if now == prev {
			return
		}
		prev = now
	}
}

type result struct {
	wall    time.Duration
	machine float64 // CPU-seconds of the whole machine during the pull
}

func row(r int, name string, p, direct result, own float64) {
	ownS := "-"
	if name != "direct" {
		ownS = fmt.Sprintf("%.2f", own)
	}
	fmt.Printf("%-5d %-12s %8.3f %6.2fx %13.2f %5.0f%% %14s\n", r, name, p.wall.Seconds(), p.wall.Seconds()/direct.wall.Seconds(),
		p.machine, 100*p.machine/float64(runtime.NumCPU())/p.wall.Seconds(), ownS)
}

// pull GETs u and checks the body against want, hashing it as it comes.
func pull(u, want string) result {
	b0 := machineCPU()
	start := time.Now()
	resp, err := http.Get(u)
	check(err)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		log.Fatalf("GET %s: %s", u, resp.Status)
	}
	h := sha256.New()
	_, err = io.CopyBuffer(h, resp.Body, make([]byte, 256<<10))
	check(err)
	wall := time.Since(start)
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != want {
		log.Fatalf("GET %s: got %s, want %s", u, got, want)
	}
	return result{wall, machineCPU() - b0}
}

// machineCPU is the CPU-seconds all cores spent busy since boot.
func machineCPU() float64 {
	b, err := os.ReadFile("/proc/stat")
	check(err)
	f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])[1:]
	var busy float64
	for i, x := range f {
		n, _ := strconv.ParseFloat(x, 64)
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy / 100 // USER_HZ
}

// procCPU is the user+system CPU-seconds of a process.
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	check(err)
	s := string(b)
	f := strings.Fields(s[strings.LastIndex(s, ")")+2:])
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / 100
}

func startOrigin(dir string) *exec.Cmd {
	cmd := distribution(dir, "")
	check(cmd.Start())
	return cmd
}

// distribution is a docker-registry command storing under dir, a proxy
// of remote unless that is empty.
func distribution(dir, remote string) *exec.Cmd {
	cfg := filepath.Join(dir, "registry.yml")
	proxy := ""
	if remote != "" {
		proxy = fmt.Sprintf("proxy: {remoteurl: %q}\n", remote)
	}
	check(os.WriteFile(cfg, fmt.Appendf(nil, "version: 0.1\nlog: {level: error, accesslog: {disabled: true}}\n"+
		"storage: {filesystem: {rootdirectory: %s}, maintenance: {uploadpurging: {enabled: false}}}\n"+
		"http: {addr: \"127.0.0.1:0\"}\n%s", filepath.Join(dir, "data"), proxy), 0o644))
	return exec.Command("docker-registry", "serve", cfg)
}

// listenAddr waits for pid to listen on a TCP port and returns it, asked
// of the kernel (docker-registry does not print it).
func listenAddr(pid int) string {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		addrs, err := procnet.ListenAddrs(pid)
		check(err)
		if len(addrs) > 0 {
			return addrs[0]
		}
		time.Sleep(20 * time.Millisecond) // a process we do not control: nothing to wait on but its sockets
	}
	log.Fatalf("pid %d never listened", pid)
	return ""
}

// pushBlob uploads size random bytes to the origin and returns their digest.
func pushBlob(origin string, size int64) string {
	data := make([]byte, size)
	rand.Read(data)
	sum := sha256.Sum256(data)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	resp, err := http.Post(origin+"/v2/bench/cold/blobs/uploads/", "", nil)
	check(err)
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	check(err)
	base, _ := url.Parse(origin)
	loc = base.ResolveReference(loc)
	q := loc.Query()
	q.Set("digest", digest)
	loc.RawQuery = q.Encode()
	req, _ := http.NewRequest(http.MethodPut, loc.String(), bytes.NewReader(data))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = http.DefaultClient.Do(req)
	check(err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		log.Fatalf("push to the origin: %s", resp.Status)
	}
	return digest
}

type bufPool struct{}

func (bufPool) Get() []byte  { return make([]byte, 256<<10) }
func (bufPool) Put(x []byte) {}

// startRelay copies every byte between the clients and the origin, as the
// bench's counting relay does.
func startRelay(origin string) string {
	u, _ := url.Parse(origin)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.BufferPool = bufPool{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	go http.Serve(ln, rp)
	return "http://" + ln.Addr().String()
}

// startMirror starts wharf, Distribution's proxy or this program as the
// ideal mirror with the relay as its upstream, and returns it with its
// address and a channel closed once wharf logs a cached blob.
func startMirror(name, bin, dir, upstream string) (*exec.Cmd, string, chan struct{}) {
	var cmd *exec.Cmd
	switch name {
	case "distribution":
		cmd = distribution(dir, upstream)
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		check(cmd.Start())
		return cmd, listenAddr(cmd.Process.Pid), nil
	case "ideal":
		cmd = exec.Command(bin, "ideal", upstream)
	default:
		cfg := filepath.Join(dir, "wharf.yml")
		check(os.WriteFile(cfg, fmt.Appendf(nil, "listen: 127.0.0.1:0\ndata_dir: %s\nlog: {access_log: false}\n"+
			"proxies: [{name: origin, upstream: %q, default: true}]\n", filepath.Join(dir, "data"), upstream), 0o644))
		cmd = exec.Command(bin, "serve", "--config", cfg)
	}
	out, err := cmd.StdoutPipe()
	check(err)
	cmd.Stderr = cmd.Stdout
	check(cmd.Start())
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if _, a, ok := strings.Cut(sc.Text(), "addr="); ok {
			cached := make(chan struct{})
			go func() {
				for sc.Scan() {
					if strings.Contains(sc.Text(), `msg="cached blob"`) {
						close(cached)
						break
					}
				}
				io.Copy(io.Discard, out)
			}()
			return cmd, strings.Fields(a)[0], cached
		}
	}
	log.Fatalf("%s exited before it listened", name)
	return nil, "", nil
}

// ideal serves GET /v2/.../blobs/DIGEST from upstream: the body streams to
// the client as it arrives, a goroutine hashes it, and the last byte waits
// for the digest to match.
func ideal(upstream string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	fmt.Printf("addr=%s\n", ln.Addr())
	log.Fatal(http.Serve(ln, idealHandler(upstream)))
}

// idealHandler is the ideal mirror's handler (see ideal).
func idealHandler(upstream string) http.Handler {
	tr := &http.Transport{DisableCompression: true}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, upstream+r.URL.Path, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		want := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
		w.Header().Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
		const bufs = 16
		free, toHash, sum := make(chan []byte, bufs), make(chan []byte, bufs), make(chan string)
		for range bufs {
			free <- make([]byte, 1<<20)
		}
		go func() {
			h := sha256.New()
			for p := range toHash {
				h.Write(p)
				free <- p[:cap(p)]
			}
			sum <- "sha256:" + hex.EncodeToString(h.Sum(nil))
		}()
		var held byte
		have := false
		for {
			buf := <-free
			n, err := io.ReadFull(resp.Body, buf)
			if n > 0 {
				if have {
					w.Write([]byte{held})
				}
				w.Write(buf[:n-1])
				held, have = buf[n-1], true
				toHash <- buf[:n]
			} else {
				free <- buf
			}
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					have = false
				}
				break
			}
		}
		close(toHash)
		if <-sum == want && have {
			w.Write([]byte{held})
		}
	})
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
