//go:build linux

package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/e2e/harness"
	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/storage"
)

// crashConfig is a wharf with a hosted namespace and a default proxy whose
// cache budget is small enough that the seeded images do not all fit, so
// eviction runs during the rounds.
const crashConfig = `listen: {{.Listen}}
data_dir: {{.DataDir}}
proxies:
  - name: hub
    upstream: %s
    default: true
hosted:
  - name: team
cache:
  max_size: 40MiB
`

// crashGCGrace is the grace period of the rounds' `wharf gc` runs: short,
// so that content deleted a moment ago is really collected while the kill
// may come.
const crashGCGrace = "2s"

// Environment of TestCrashKill9.
const (
	crashRoundsEnv = "WHARF_CRASH_ROUNDS" // default 5; `make stress` runs hundreds
	crashSeedEnv   = "WHARF_CRASH_SEED"   // replay a run's kill delays and workloads
)

// TestCrashKill9 kills a real `wharf serve` with SIGKILL at a random moment
// while clients push to a hosted namespace, pull through a proxy (cold and
// warm), delete manifests and run evictions, round after round on the same
// data dir. After each kill: `wharf fsck` finds no corrupt blob; the
// restarted server has no temp files left, serves every image whose push
// completed (manifest PUT 201) with identical digests and verified bytes,
// keeps completed deletes deleted, and serves every proxied image (fetching
// again what it lost); after a clean stop fsck is clean again and the index
// agrees with the files (records, LRU keys, usage counters, tags).
func TestCrashKill9(t *testing.T) {
	skipShortE2E(t)
	harness.Require(t, "docker-registry")
	rounds := 5
	if s := os.Getenv(crashRoundsEnv); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number", crashRoundsEnv, s)
		}
		rounds = n
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(crashSeedEnv); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", crashSeedEnv, s, err)
		}
		seed = n
	}
	t.Logf("%d rounds, seed %d (replay the delays and workloads with %s=%d)", rounds, seed, crashSeedEnv, seed)

	origin := harness.StartDistribution(t, harness.DistributionOptions{})
	seeds := []crashSeed{{repo: "library/big", size: 32 << 20}, {repo: "library/medium", size: 6 << 20}}
	for i := range 4 {
		seeds = append(seeds, crashSeed{repo: fmt.Sprintf("library/small%d", i), size: 192 << 10})
	}
	seedRNG := rand.New(rand.NewPCG(seed, 0))
	for i := range seeds {
		img, err := fastImage(seedRNG, seeds[i].size)
		if err != nil {
			t.Fatal(err)
		}
		seeds[i].digest = harness.Push(t, origin.Addr+"/"+seeds[i].repo+":1", img)
	}

	bin := harness.BuildWharf(t)
	gcAvailable := false
	w := harness.StartWharf(t, bin, fmt.Sprintf(crashConfig, origin.URL))
	if _, err := w.Run("gc", "--help"); err == nil {
		gcAvailable = true
	}
	t.Logf("wharf gc available: %v (run with --grace %s alongside evictions when it is)", gcAvailable, crashGCGrace)

	st := &crashState{}
	for round := 1; round <= rounds; round++ {
		if round > 1 {
			w = w.Restart(t)
		}
		rng := rand.New(rand.NewPCG(seed, uint64(round)))
		sum := crashRound(t, w, round, rng, seeds, st, gcAvailable)
		if t.Failed() {
			t.Logf("round %d/%d: %s", round, rounds, sum)
			t.Fatalf("round %d failed; replay with %s=%d %s=%d", round, crashSeedEnv, seed, crashRoundsEnv, round)
		}
		t.Logf("round %d/%d: %s", round, rounds, sum)
	}

	// Everything any round pushed is still there.
	w = w.Restart(t)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	var checked int
	for _, p := range st.all() {
		switch p.state {
		case pushDone:
			if err := pullVerify(t.Context(), tr, w.Addr+"/"+p.ref, p.digest); err != nil {
				t.Errorf("at the end, %s (pushed in round %d): %v", p.ref, p.round, err)
			}
			checked++
		case pushDeleted:
			if err := expectManifestGone(t.Context(), w, p); err != nil {
				t.Errorf("at the end, %s (deleted in round %d): %v", p.ref, p.round, err)
			}
		}
	}
	if err := w.Stop(); err != nil {
		t.Errorf("final SIGTERM: %v", err)
	}
	t.Logf("after %d rounds: %d pushed images verified, %d deleted ones gone", rounds, checked, st.count(pushDeleted))
}

type crashSeed struct {
	repo   string
	size   int64 // of its one layer
	digest v1.Hash
}

type pushState int

const (
	pushDone      pushState = iota // manifest PUT answered 201
	pushDeleting                   // a DELETE is under way
	pushDeleted                    // the DELETE answered 202
	pushUncertain                  // the DELETE was cut by the kill
)

type crashPush struct {
	ref    string // repo:tag, without the host
	repo   string
	digest v1.Hash
	round  int
	state  pushState
	// deletedIn is the round whose DELETE (202) removed it.
	deletedIn int
}

// crashState is what every round has pushed and deleted.
type crashState struct {
	mu     sync.Mutex
	pushes []*crashPush
}

func (s *crashState) add(p *crashPush) {
	s.mu.Lock()
	s.pushes = append(s.pushes, p)
	s.mu.Unlock()
}

func (s *crashState) all() []crashPush {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]crashPush, len(s.pushes))
	for i, p := range s.pushes {
		out[i] = *p
	}
	return out
}

func (s *crashState) count(st pushState) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, p := range s.pushes {
		if p.state == st {
			n++
		}
	}
	return n
}

// pickForDelete marks a random completed push as being deleted.
func (s *crashState) pickForDelete(rng *rand.Rand) *crashPush {
	s.mu.Lock()
	defer s.mu.Unlock()
	var cands []*crashPush
	for _, p := range s.pushes {
		if p.state == pushDone {
			cands = append(cands, p)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	p := cands[rng.IntN(len(cands))]
	p.state = pushDeleting
	return p
}

// deleted records a DELETE answered 202 in round.
func (s *crashState) deleted(p *crashPush, round int) {
	s.mu.Lock()
	p.state, p.deletedIn = pushDeleted, round
	s.mu.Unlock()
}

func (s *crashState) set(p *crashPush, st pushState) {
	s.mu.Lock()
	p.state = st
	s.mu.Unlock()
}

// roundStats counts what the clients did in one round.
type roundStats struct {
	mu                                   sync.Mutex
	pushStarted, pushDone, pushRefused   int
	pullStarted, pullDone                int
	deleteStarted, deleteDone            int
	evictRuns, evictDone, gcRuns, gcDone int
	earlyErrs                            []string // errors returned before the kill
}

func (r *roundStats) inc(p *int) {
	r.mu.Lock()
	*p++
	r.mu.Unlock()
}

// crashRound runs one round against a started wharf and returns its summary.
func crashRound(t *testing.T, w *harness.Wharf, round int, rng *rand.Rand, seeds []crashSeed, st *crashState, gc bool) string {
	t.Helper()
	delay := time.Duration(50+rng.IntN(1451)) * time.Millisecond
	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stats := &roundStats{}
	var (
		killMu sync.Mutex
		killAt time.Time // zero until the kill
	)
	// early records an operation's error if it came back before the kill:
	// nothing about the crash can explain it.
	early := func(what string, err error) {
		killMu.Lock()
		k := killAt
		killMu.Unlock()
		if k.IsZero() {
			stats.mu.Lock()
			stats.earlyErrs = append(stats.earlyErrs, fmt.Sprintf("%s: %v", what, err))
			stats.mu.Unlock()
		}
	}

	var wg sync.WaitGroup
	var killed atomic.Bool // workers start nothing new after the kill
	worker := func(id int, fn func(rng *rand.Rand)) {
		wrng := rand.New(rand.NewPCG(rng.Uint64(), uint64(id)))
		wg.Go(func() {
			for !killed.Load() && ctx.Err() == nil {
				fn(wrng)
			}
		})
	}
	opts := func() []remote.Option {
		return []remote.Option{remote.WithContext(ctx), remote.WithTransport(tr)}
	}
	for p := range 2 {
		n := 0
		worker(p, func(rng *rand.Rand) {
			n++
			// Mostly small images; now and then one big layer, so a push
			// is often in flight when the kill comes.
			// Sizes stay modest: hosted content is never evicted, and
			// hundreds of rounds accumulate on one data dir.
			sizes := []int64{int64(16<<10 + rng.IntN(256<<10)), int64(16<<10 + rng.IntN(256<<10)), int64(rng.IntN(64 << 10))}
			if rng.IntN(4) == 0 {
				sizes = append(sizes, int64(2<<20+rng.IntN(2<<20)))
			}
			img, err := fastImage(rng, sizes...)
			if err != nil {
				early("building an image", err)
				return
			}
			repo := fmt.Sprintf("team/crash%d", rng.IntN(4))
			ref := fmt.Sprintf("%s:r%d-w%d-%d", repo, round, p, n)
			d, _ := img.Digest()
			stats.inc(&stats.pushStarted)
			r, _ := name.ParseReference(w.Addr+"/"+ref, name.Insecure)
			if err := remote.Write(r, img, opts()...); err != nil {
				if gc && harness.HasCode(err, transport.ManifestBlobUnknownErrorCode) {
					// A layer uploaded more than the grace period before its
					// manifest may be collected first: GC's documented
					// trade-off, and the push says so.
					stats.inc(&stats.pushRefused)
					return
				}
				early("push "+ref, err)
				return
			}
			// remote.Write returns nil only after the manifest PUT got 201.
			st.add(&crashPush{ref: ref, repo: repo, digest: d, round: round})
			stats.inc(&stats.pushDone)
		})
	}
	for p := range 2 {
		worker(10+p, func(rng *rand.Rand) {
			s := seeds[rng.IntN(len(seeds))]
			stats.inc(&stats.pullStarted)
			if err := pullVerify(ctx, tr, w.Addr+"/"+s.repo+":1", s.digest); err != nil {
				early("pull "+s.repo, err)
				return
			}
			stats.inc(&stats.pullDone)
		})
	}
	worker(20, func(rng *rand.Rand) {
		if !sleepCtx(ctx, time.Duration(100+rng.IntN(400))*time.Millisecond) {
			return
		}
		if gc && rng.IntN(3) == 0 {
			stats.inc(&stats.gcRuns)
			if _, err := w.Run("gc", "--grace", crashGCGrace, "--data-dir", w.DataDir); err != nil {
				early("wharf gc", err)
				return
			}
			stats.inc(&stats.gcDone)
			return
		}
		stats.inc(&stats.evictRuns)
		out, err := w.Run("cache", "evict", "--unused-for", "0s", "--data-dir", w.DataDir)
		if err != nil {
			early("wharf cache evict", err)
			return
		}
		_ = out
		stats.inc(&stats.evictDone)
	})
	worker(30, func(rng *rand.Rand) {
		if !sleepCtx(ctx, time.Duration(150+rng.IntN(500))*time.Millisecond) {
			return
		}
		p := st.pickForDelete(rng)
		if p == nil {
			return
		}
		stats.inc(&stats.deleteStarted)
		r, _ := name.ParseReference(w.Addr+"/"+p.repo+"@"+p.digest.String(), name.Insecure)
		if err := remote.Delete(r, opts()...); err != nil {
			st.set(p, pushUncertain)
			early("delete "+p.ref, err)
			return
		}
		st.deleted(p, round)
		stats.inc(&stats.deleteDone)
	})

	time.Sleep(delay)
	killMu.Lock()
	killAt = time.Now()
	killMu.Unlock()
	killed.Store(true)
	_ = w.Kill() // "signal: killed" is the expected exit
	cancel()
	wg.Wait()
	for _, e := range stats.earlyErrs {
		t.Errorf("round %d: before the kill: %s", round, e)
	}

	// 1. fsck on the data dir the crash left: no corrupt or mis-sized blob.
	fsckOut, err := w.Run("fsck", "--data-dir", w.DataDir)
	if err != nil {
		t.Errorf("round %d: wharf fsck after SIGKILL: %v", round, err)
	}

	// 2. Restart: reconciliation repairs, and removes every temp file.
	logBefore := len(w.Logs())
	w2 := w.Restart(t)
	*w = *w2
	if ents, err := os.ReadDir(filepath.Join(w.DataDir, "tmp")); err != nil || len(ents) > 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("round %d: DATA/tmp after restart: %v %v", round, names, err)
	}
	if _, err := os.Stat(filepath.Join(w.DataDir, "quarantine")); err == nil {
		t.Errorf("round %d: a quarantine dir appeared", round)
	}
	repaired := reconcileLine(w.Logs()[logBefore:])

	// 3. What completed before the kill is all there, bytes verified.
	var verified, deletedGone, uncertain int
	all := st.all()
	var older []crashPush
	for _, p := range all {
		if p.round != round && p.state == pushDone {
			older = append(older, p)
		}
	}
	rng.Shuffle(len(older), func(i, j int) { older[i], older[j] = older[j], older[i] })
	sample := older[:min(len(older), 8)]
	for _, p := range all {
		switch {
		case p.state == pushDone && p.round == round:
			if err := pullVerify(t.Context(), tr, w.Addr+"/"+p.ref, p.digest); err != nil {
				t.Errorf("round %d: pushed (201) before the kill, but after restart %s: %v", round, p.ref, err)
			}
			verified++
		case p.state == pushDeleted && p.deletedIn >= round-1:
			// Deleted in this round before the kill, or pruned at the
			// end of the last one; the final check covers every delete.
			if err := expectManifestGone(t.Context(), w, p); err != nil {
				t.Errorf("round %d: deleted (202) in round %d, %s: %v", round, p.deletedIn, p.ref, err)
			}
			deletedGone++
		case p.state == pushUncertain:
			// The kill cut the DELETE: either outcome is fine, but it
			// must be whole — a manifest that is served pulls completely.
			uncertain++
			ref := w.Addr + "/" + p.repo + "@" + p.digest.String()
			if err := pullVerify(t.Context(), tr, ref, p.digest); err == nil {
				st.set(findPush(st, p), pushDone)
			} else if gerr := expectManifestGone(t.Context(), w, p); gerr != nil {
				t.Errorf("round %d: delete of %s cut by the kill left it half there: pull: %v; %v", round, p.ref, err, gerr)
			} else {
				st.deleted(findPush(st, p), round)
			}
		}
	}
	for _, p := range sample {
		if err := pullVerify(t.Context(), tr, w.Addr+"/"+p.ref, p.digest); err != nil {
			t.Errorf("round %d: %s (pushed in round %d): %v", round, p.ref, p.round, err)
		}
	}
	// 4. Every proxied image pulls right, fetched again where it was lost.
	for _, s := range seeds {
		if err := pullVerify(t.Context(), tr, w.Addr+"/"+s.repo+":1", s.digest); err != nil {
			t.Errorf("round %d: proxied %s after restart: %v", round, s.repo, err)
		}
	}

	// Keep the data dir bounded over hundreds of rounds: delete the
	// oldest images beyond crashKeepImages and collect with no grace
	// (nothing else runs now).
	pruned := ""
	if gc {
		pruned = crashPrune(t, w, tr, st, round)
	}

	// 5. A clean stop, then fsck and the index against the files.
	if err := w.Stop(); err != nil {
		t.Errorf("round %d: SIGTERM after the checks: %v", round, err)
	}
	if out, err := w.Run("fsck", "--data-dir", w.DataDir); err != nil {
		t.Errorf("round %d: wharf fsck after a clean stop: %v\n%s", round, err, out)
	}
	idx := indexAgainstFiles(w.DataDir)
	for _, p := range idx.problems {
		t.Errorf("round %d: index and files disagree: %s", round, p)
	}

	return fmt.Sprintf("killed after %s; pushes %d/%d, pulls %d/%d, deletes %d/%d, evictions %d/%d%s; fsck %q; restart: %s; verified %d pushed + %d older, %d deletes gone, %d cut deletes resolved, %d proxied images%s; after clean stop: %s",
		delay, stats.pushDone, stats.pushStarted, stats.pullDone, stats.pullStarted, stats.deleteDone, stats.deleteStarted,
		stats.evictDone, stats.evictRuns, gcSummary(gc, stats), firstLine(fsckOut), repaired,
		verified, len(sample), deletedGone, uncertain, len(seeds), pruned, idx.summary)
}

// crashKeepImages bounds how many pushed images stay between rounds.
const crashKeepImages = 120

// crashPrune deletes the oldest live images beyond crashKeepImages, runs
// `wharf gc --grace 0s`, and checks that what is left still pulls.
func crashPrune(t *testing.T, w *harness.Wharf, tr http.RoundTripper, st *crashState, round int) string {
	t.Helper()
	var live []*crashPush
	st.mu.Lock()
	for _, p := range st.pushes {
		if p.state == pushDone {
			live = append(live, p)
		}
	}
	st.mu.Unlock()
	if len(live) <= crashKeepImages {
		return ""
	}
	doomed := live[:len(live)-crashKeepImages*3/4]
	for _, p := range doomed {
		r, _ := name.ParseReference(w.Addr+"/"+p.repo+"@"+p.digest.String(), name.Insecure)
		if err := remote.Delete(r, remote.WithContext(t.Context()), remote.WithTransport(tr)); err != nil {
			t.Errorf("round %d: pruning %s: %v", round, p.ref, err)
			continue
		}
		st.deleted(p, round)
	}
	out, err := w.Run("gc", "--grace", "0s", "--data-dir", w.DataDir)
	if err != nil {
		t.Errorf("round %d: wharf gc --grace 0s: %v", round, err)
	}
	kept := live[len(doomed):]
	for _, p := range kept[max(0, len(kept)-8):] {
		if err := pullVerify(t.Context(), tr, w.Addr+"/"+p.ref, p.digest); err != nil {
			t.Errorf("round %d: after gc, %s: %v", round, p.ref, err)
		}
	}
	return fmt.Sprintf("; pruned %d images, gc: %s", len(doomed), lastLine(out))
}

// lastLine is the last non-empty line of s: wharf gc's summary.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func gcSummary(gc bool, s *roundStats) string {
	if !gc {
		return ""
	}
	return fmt.Sprintf(", gc %d/%d (pushes refused for a collected blob: %d)", s.gcDone, s.gcRuns, s.pushRefused)
}

func findPush(st *crashState, p crashPush) *crashPush {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, q := range st.pushes {
		if q.ref == p.ref {
			return q
		}
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "checked") {
			return l
		}
	}
	return strings.TrimSpace(s)
}

// reconcileLine extracts what start-up reconciliation repaired from a log.
func reconcileLine(log string) string {
	var parts []string
	for _, l := range strings.Split(log, "\n") {
		for _, m := range []string{"repaired after an unclean stop", "removed temp files", "removed abandoned uploads"} {
			if strings.Contains(l, m) {
				if i := strings.Index(l, "msg="); i >= 0 {
					l = l[i+len("msg="):]
				}
				parts = append(parts, l)
			}
		}
	}
	if len(parts) == 0 {
		return "nothing to repair"
	}
	return strings.Join(parts, "; ")
}

// pullVerify pulls ref and checks the manifest digest, the config and
// every layer against their digests (go-containerregistry verifies each
// layer's size and digest as it reads it).
func pullVerify(ctx context.Context, tr http.RoundTripper, ref string, want v1.Hash) error {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return err
	}
	img, err := remote.Image(r, remote.WithContext(ctx), remote.WithTransport(tr))
	if err != nil {
		return err
	}
	got, err := img.Digest()
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("WRONG manifest: digest %s, want %s", got, want)
	}
	m, err := img.Manifest()
	if err != nil {
		return err
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if sum := sha256.Sum256(raw); "sha256:"+hex.EncodeToString(sum[:]) != m.Config.Digest.String() {
		return fmt.Errorf("WRONG config bytes for %s", m.Config.Digest)
	}
	for _, l := range m.Layers {
		layer, err := img.LayerByDigest(l.Digest)
		if err != nil {
			return err
		}
		rc, err := layer.Compressed()
		if err != nil {
			return fmt.Errorf("layer %s: %w", l.Digest, err)
		}
		_, err = io.Copy(io.Discard, rc)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("layer %s: %w", l.Digest, err)
		}
	}
	return nil
}

// expectManifestGone checks that a deleted manifest answers 404
// MANIFEST_UNKNOWN by digest.
func expectManifestGone(ctx context.Context, w *harness.Wharf, p crashPush) error {
	res := fetch(ctx, manifestURL(w, p.repo, p.digest.String()), 30*time.Second, "Accept", manifestAccept)
	if res.Err != nil {
		return res.Err
	}
	if res.Status != http.StatusNotFound || ociCode(res.Body) != "MANIFEST_UNKNOWN" {
		return fmt.Errorf("GET of the deleted manifest: %d %s", res.Status, res.Body)
	}
	return nil
}

// fastImage builds an image with one layer per size, each a tar.gz of one
// file of random bytes, gzip with stored blocks: cheap to build and hash,
// even under -race, unlike go-containerregistry's random layers, which are
// compressed again at each read.
func fastImage(rng *rand.Rand, sizes ...int64) (v1.Image, error) {
	adds := make([]mutate.Addendum, 0, len(sizes))
	for i, size := range sizes {
		l, err := fastLayer(rng, size)
		if err != nil {
			return nil, err
		}
		adds = append(adds, mutate.Addendum{Layer: l, History: v1.History{CreatedBy: fmt.Sprintf("wharf e2e: random layer %d", i)}})
	}
	return mutate.Append(empty.Image, adds...)
}

func fastLayer(rng *rand.Rand, size int64) (v1.Layer, error) {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], rng.Uint64())
	binary.LittleEndian.PutUint64(key[8:], rng.Uint64())
	// Mixed with fresh randomness: a replayed seed must still push new
	// blobs, which a data dir from an earlier round could already hold.
	if _, err := crand.Read(key[16:]); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.Grow(int(size) + 64<<10)
	gz, err := gzip.NewWriterLevel(&buf, gzip.NoCompression)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(gz)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "data", Mode: 0o644, Size: size, ModTime: time.Unix(946684800, 0)}); err != nil {
		return nil, err
	}
	if _, err := io.CopyN(tw, rand.NewChaCha8(key), size); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return static.NewLayer(buf.Bytes(), types.DockerLayer), nil
}

// indexCheck is what indexAgainstFiles found.
type indexCheck struct {
	problems []string
	summary  string
}

// indexAgainstFiles opens a stopped server's index and compares it with
// the blob files: every record has its file (same size) and every file its
// record; each evictable record has exactly one LRU key, at its last
// access; the usage counters equal the sums of the records; every manifest
// has its bytes; every tag points at a manifest of its repository.
func indexAgainstFiles(dataDir string) indexCheck {
	var c indexCheck
	bad := func(f string, a ...any) {
		if len(c.problems) < 20 {
			c.problems = append(c.problems, fmt.Sprintf(f, a...))
		}
	}
	store, err := storage.Open(dataDir)
	if err != nil {
		bad("opening the store: %v", err)
		return c
	}
	x, err := index.Open(filepath.Join(dataDir, "index"), index.Options{})
	if err != nil {
		bad("opening the index: %v", err)
		return c
	}
	defer x.Close()
	files := map[oci.Digest]int64{}
	err = store.Walk(func(d oci.Digest, size int64) error {
		files[d] = size
		return nil
	}, func(p string) { bad("unrecognized file %s", p) })
	if err != nil {
		bad("walking blobs: %v", err)
	}
	recs := map[oci.Digest]index.BlobRecord{}
	sums := map[string]index.Usage{}
	var manifests, tags, lru int
	err = x.View(func(tx index.Txn) error {
		if err := tx.EachBlob(func(r index.BlobRecord) error {
			recs[r.Digest] = r
			origin := r.Origin
			if origin == "" {
				origin = index.OriginHosted
			}
			u := sums[origin]
			u.Bytes += r.Size
			u.Count++
			sums[origin] = u
			return nil
		}); err != nil {
			return err
		}
		usages, err := tx.Usages()
		if err != nil {
			return err
		}
		for origin, u := range usages {
			if u != sums[origin] {
				bad("usage counter of %q says %d bytes in %d blobs; the records add up to %d in %d", origin, u.Bytes, u.Count, sums[origin].Bytes, sums[origin].Count)
			}
		}
		for origin, s := range sums {
			if _, ok := usages[origin]; !ok {
				bad("no usage counter for %q (%d bytes in %d blobs)", origin, s.Bytes, s.Count)
			}
		}
		seen := map[oci.Digest]bool{}
		if err := tx.EachLeastRecent(time.Time{}, func(d oci.Digest, at time.Time) (bool, error) {
			lru++
			r, ok := recs[d]
			switch {
			case !ok:
				bad("LRU key for %s, which has no record", d)
			case !r.Evictable():
				bad("LRU key for %s of origin %q, which is not evictable", d, r.Origin)
			case !r.LastAccess.Equal(at):
				bad("LRU key for %s at %s, but its record says last access %s", d, at, r.LastAccess)
			}
			if seen[d] {
				bad("two LRU keys for %s", d)
			}
			seen[d] = true
			return true, nil
		}); err != nil {
			return err
		}
		for d, r := range recs {
			if r.Evictable() && !seen[d] {
				bad("evictable %s (origin %q) has no LRU key: eviction can never find it", d, r.Origin)
			}
		}
		repos, err := tx.Repositories(-1, "")
		if err != nil {
			return err
		}
		for _, repo := range repos {
			if err := tx.EachManifest(repo, func(_ string, m index.ManifestRecord) error {
				manifests++
				if _, ok := files[m.Digest]; !ok {
					bad("manifest %s in %s has no bytes on disk", m.Digest, repo)
				}
				return nil
			}); err != nil {
				return err
			}
			names, err := tx.Tags(repo, -1, "")
			if err != nil {
				return err
			}
			for _, tag := range names {
				tags++
				d, err := tx.Tag(repo, tag)
				if err != nil {
					return err
				}
				if _, err := tx.Manifest(repo, d); err != nil {
					bad("tag %s:%s points at %s: %v", repo, tag, d, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		bad("reading the index: %v", err)
	}
	for d, r := range recs {
		size, ok := files[d]
		switch {
		case !ok:
			bad("record for %s (origin %q) without a file", d, r.Origin)
		case size != r.Size:
			bad("record for %s says %d bytes, file has %d", d, r.Size, size)
		}
	}
	var unindexed []string
	for d := range files {
		if _, ok := recs[d]; !ok {
			unindexed = append(unindexed, string(d))
		}
	}
	slices.Sort(unindexed)
	for _, d := range unindexed {
		bad("file %s without a record", d)
	}
	origins := make([]string, 0, len(sums))
	for o, u := range sums {
		origins = append(origins, fmt.Sprintf("%s %d blobs/%.1f MiB", o, u.Count, float64(u.Bytes)/(1<<20)))
	}
	slices.Sort(origins)
	c.summary = fmt.Sprintf("%d files, %d records (%s), %d LRU keys, %d manifests, %d tags, %d problems",
		len(files), len(recs), strings.Join(origins, ", "), lru, manifests, tags, len(c.problems))
	return c
}
