//go:build linux

package pgindex_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/wharf-registry/wharf/cache/index"
)

// PostgreSQL restarted under a running index: calls made while it is
// down fail saying which server is unavailable, and once it is back the
// same index works again, its dead connections replaced, without being
// reopened. Not parallel: it stops the package's server.
func TestServerRestart(t *testing.T) {
	x := open(t)
	d := dgN(1)
	update(t, x, func(tx index.Txn) error {
		return tx.PutBlob(index.BlobRecord{Digest: d, Size: 1, Origin: "hub", LastAccess: base})
	})
	// Fill the pool with connections, all of which the restart kills.
	var held, done sync.WaitGroup
	held.Add(4)
	for range 4 {
		done.Go(func() {
			x.View(func(tx index.Txn) error {
				_, err := tx.Blob(d)
				held.Done()
				held.Wait()
				return err
			})
		})
	}
	done.Wait()

	pg.Restart()
	for i := range 4 { // each of the pool's dead connections would be met in turn
		update(t, x, func(tx index.Txn) error { return tx.Touch(d, base.Add(1), int64(i)) })
		view(t, x, func(tx index.Txn) error { _, err := tx.Blob(d); return err })
	}

	if err := pg.Stop(); err != nil {
		t.Logf("stopping postgres: %v", err)
	}
	down := "postgres at " + pg.Addr + "/"
	err := x.View(func(tx index.Txn) error { _, err := tx.Blob(d); return err })
	if err == nil || !strings.Contains(err.Error(), down) || !strings.Contains(err.Error(), " unavailable: ") {
		t.Errorf("View while the server is down = %v, want it to say %q… unavailable", err, down)
	}
	err = x.Update(context.Background(), func(tx index.Txn) error { return tx.SetTag("r", "t", d) })
	if err == nil || !strings.HasPrefix(err.Error(), "index: ") || !strings.Contains(err.Error(), down) {
		t.Errorf("Update while the server is down = %v", err)
	}
	t.Logf("while down: %v", err)

	pg.Restart() // starts it again, and waits until it accepts connections
	update(t, x, func(tx index.Txn) error { return tx.SetTag("r", "t", d) })
	view(t, x, func(tx index.Txn) error {
		if got, err := tx.Tag("r", "t"); err != nil || got != d {
			t.Errorf("after the server came back: %s, %v", got, err)
		}
		return nil
	})
}
