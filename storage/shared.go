package storage

import "os"

// OpenReader opens a second handle on the unfinished blob so other
// goroutines can read what was written so far with ReadAt while the write
// goes on. The handle stays valid after Commit renames the file or Abort
// removes it; the caller closes it.
func (w *Writer) OpenReader() (*os.File, error) { return os.Open(w.f.Name()) }
