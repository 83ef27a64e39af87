package index

import (
	"log/slog"
	"os"
	"strconv"
	"testing"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

var scratchOpen = Open

func init() {
	if os.Getenv("SCRATCH_BC") == "" {
		return
	}
	bc, _ := strconv.Atoi(os.Getenv("SCRATCH_BC"))
	comp := os.Getenv("SCRATCH_NOCOMP") != ""
	_ = scratchOpen
	openHook = func(dir string) (*Index, error) {
		opts := badger.DefaultOptions(dir).
			WithLogger(badgerLogger{slog.New(slog.DiscardHandler)}).
			WithMemTableSize(16 << 20).
			WithNumMemtables(2).
			WithBlockCacheSize(int64(bc) << 20).
			WithIndexCacheSize(16 << 20).
			WithValueLogFileSize(64 << 20).
			WithValueThreshold(1 << 10).
			WithNumCompactors(2).
			WithNumLevelZeroTables(4).
			WithNumLevelZeroTablesStall(8).
			WithSyncWrites(true).
			WithDetectConflicts(true)
		if comp {
			opts = opts.WithCompression(options.None)
		}
		db, err := badger.Open(opts)
		if err != nil {
			return nil, err
		}
		return &Index{db: db, log: slog.New(slog.DiscardHandler)}, nil
	}
}

func TestScratch(t *testing.T) {}
