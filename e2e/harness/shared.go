//go:build linux

package harness

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
)

// Shared starts something a whole test package shares, from TestMain,
// where there is no *testing.T: start gets a testing.TB that lives until
// stop is called, which runs its cleanups (stopping the processes it
// started) in reverse order. A start that skips (a missing program)
// returns its reason in skip; one that fails, in err.
//
//	func TestMain(m *testing.M) {
//		pg, stop, skip, err := harness.Shared("postgres", func(t testing.TB) *harness.Postgres { return harness.StartPostgres(t) })
//		...
//		code := m.Run()
//		stop()
//		os.Exit(code)
//	}
func Shared[T any](name string, start func(t testing.TB) T) (v T, stop func(), skip string, err error) {
	tb := &sharedTB{name: name, ctx: context.Background()}
	stop = tb.cleanup
	defer func() {
		switch r := recover().(type) {
		case nil:
		case sharedSkip:
			skip = string(r)
		case sharedFail:
			err = fmt.Errorf("%s: %s", name, string(r))
		default:
			panic(r)
		}
	}()
	return start(tb), stop, "", nil
}

// sharedTB is the testing.TB of Shared. Only the methods the harness
// uses are implemented; the others (the embedded nil TB) panic.
type sharedTB struct {
	testing.TB
	name string
	ctx  context.Context

	mu       sync.Mutex
	cleanups []func()
	failed   bool
	log      []string
}

type (
	sharedSkip string
	sharedFail string
)

func (t *sharedTB) Helper()      {}
func (t *sharedTB) Name() string { return t.name }

func (t *sharedTB) Context() context.Context { return t.ctx }

func (t *sharedTB) Log(args ...any) { t.Logf("%s", fmt.Sprint(args...)) }
func (t *sharedTB) Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s: %s\n", t.name, fmt.Sprintf(format, args...))
}

func (t *sharedTB) Fail() {
	t.mu.Lock()
	t.failed = true
	t.mu.Unlock()
}

func (t *sharedTB) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}

func (t *sharedTB) Error(args ...any) { t.Errorf("%s", fmt.Sprint(args...)) }
func (t *sharedTB) Errorf(format string, args ...any) {
	t.Logf(format, args...)
	t.Fail()
}

// FailNow and the Fatal methods panic, which Shared recovers at start;
// later (a Restart from a test), the panic fails the test binary with
// the message, which is all a shared server's failure can do.
func (t *sharedTB) FailNow()          { t.Fatalf("failed") }
func (t *sharedTB) Fatal(args ...any) { t.Fatalf("%s", fmt.Sprint(args...)) }
func (t *sharedTB) Fatalf(format string, args ...any) {
	t.Fail()
	panic(sharedFail(fmt.Sprintf(format, args...)))
}

func (t *sharedTB) Skipped() bool            { return false }
func (t *sharedTB) SkipNow()                 { t.Skipf("skipped") }
func (t *sharedTB) Skip(args ...any)         { t.Skipf("%s", fmt.Sprint(args...)) }
func (t *sharedTB) Skipf(f string, a ...any) { panic(sharedSkip(fmt.Sprintf(f, a...))) }

func (t *sharedTB) Cleanup(f func()) {
	t.mu.Lock()
	t.cleanups = append(t.cleanups, f)
	t.mu.Unlock()
}

func (t *sharedTB) TempDir() string {
	dir, err := os.MkdirTemp("", t.name)
	if err != nil {
		t.Fatalf("temp dir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// cleanup runs the cleanups, last registered first.
func (t *sharedTB) cleanup() {
	t.mu.Lock()
	fs := t.cleanups
	t.cleanups = nil
	t.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}
