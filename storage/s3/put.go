package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/minio/minio-go/v7"

	"github.com/wharf-registry/wharf/oci"
)

// Put streams r in as the blob d; size < 0 means unknown. It returns the
// number of bytes read from r. Nothing becomes visible unless the bytes
// hash to d and, when size >= 0, number size.
//
// Memory stays at two parts whatever the blob's size: one part is read
// (and hashed) while the one before it is uploaded. A blob that fits in
// one part is checked and then sent with one PutObject; a larger one goes
// up as a multipart upload that is completed only after the last byte
// was checked, and aborted on any failure, cancel or mismatch.
//
// Writing an existing blob again replaces it with the same bytes rather
// than skipping the write when a HEAD finds it: skipping would open a
// window, from that HEAD to the Put's return, in which another replica's
// GC could delete the blob this Put then reports as written, unless the
// caller holds the digest (HoldBlob) with shared claims set. Writing is
// the safer of the two whatever the caller holds.
//
// Errors keep their cause for errors.Is: the reader's, the context's,
// storage.ErrNoSpace for a full bucket, oci.ErrDigestInvalid or
// oci.ErrSizeInvalid for a mismatch.
func (s *Store) Put(ctx context.Context, d oci.Digest, size int64, r io.Reader) (int64, error) {
	if size > maxParts*s.partSize {
		return 0, fmt.Errorf("storage: s3: put %s: %d bytes is more than %d parts of %d bytes; raise the part size", d, size, maxParts, s.partSize)
	}
	if size >= 0 {
		// One byte beyond size is enough to know the stream is too long.
		r = io.LimitReader(r, size+1)
	}
	p := &put{s: s, ctx: ctx, d: d, size: size, r: r, h: d.NewHash()}
	defer p.release()
	n, err := p.run()
	if err != nil {
		return n, fmt.Errorf("storage: s3: put %s after %d bytes: %w", d, n, err)
	}
	return n, nil
}

// put is one Put under way.
type put struct {
	s    *Store
	ctx  context.Context
	d    oci.Digest
	size int64
	r    io.Reader
	h    hash.Hash
	n    int64        // bytes read from r
	bufs [2]*[]byte   // taken from the pool as needed, returned by release
	eof  bool         // r is exhausted
	done func() error // waits for the part upload in flight, if any
}

func (p *put) run() (int64, error) {
	first, err := p.fill(0)
	if err != nil {
		return p.n, err
	}
	if p.eof {
		return p.n, p.single(first)
	}
	return p.n, p.multipart(first)
}

// fill reads the next part into bufs[i] and hashes it. It stops at a
// full buffer or the end of r (p.eof), checking the context between reads
// so a cancel is seen even while r keeps delivering.
func (p *put) fill(i int) ([]byte, error) {
	if p.bufs[i] == nil {
		p.bufs[i] = p.s.getPart()
	}
	buf := *p.bufs[i]
	n := 0
	for n < len(buf) {
		if err := p.ctx.Err(); err != nil {
			return nil, err
		}
		m, err := p.r.Read(buf[n:])
		n += m
		p.n += int64(m)
		if err == io.EOF {
			p.eof = true
			break
		}
		if err != nil {
			return nil, err
		}
	}
	p.h.Write(buf[:n])
	return buf[:n], nil
}

// verify checks what was read against d and size.
func (p *put) verify() error {
	if p.size >= 0 && p.n != p.size {
		return oci.Errorf(oci.CodeSizeInvalid, "got %d bytes, expected %d", p.n, p.size)
	}
	if got := oci.FromHash(p.d.Algorithm(), p.h); got != p.d {
		return oci.Errorf(oci.CodeDigestInvalid, "content hashes to %s, not %s", got, p.d)
	}
	return nil
}

// single sends a blob held whole in memory, once it checked out.
func (p *put) single(b []byte) error {
	if err := p.verify(); err != nil {
		return err
	}
	sum := p.d.Hex() // checked: the payload's own sha256
	if p.d.Algorithm() != "sha256" {
		sum = sha256Hex(b)
	}
	_, err := p.s.core.PutObject(p.ctx, p.s.bucket, p.s.key(p.d), bytes.NewReader(b), int64(len(b)), "", sum,
		minio.PutObjectOptions{DisableContentSha256: true})
	return p.cause(err)
}

// multipart uploads parts while reading the next, and completes the
// upload only after the last byte checked out. Until then the upload is
// invisible, and every way out but success aborts it.
func (p *put) multipart(first []byte) (err error) {
	s := p.s
	key := s.key(p.d)
	id, err := s.core.NewMultipartUpload(p.ctx, s.bucket, key, minio.PutObjectOptions{})
	if err != nil {
		return p.cause(err)
	}
	defer func() {
		if err != nil {
			if p.done != nil {
				p.done() // its error is ours already, or moot
			}
			s.abort(p.ctx, key, id)
		}
	}()
	var parts []minio.CompletePart
	b, i := first, 0
	for {
		if len(parts) == maxParts {
			return fmt.Errorf("more than %d parts of %d bytes; raise the part size", maxParts, s.partSize)
		}
		if err := p.wait(); err != nil {
			return err
		}
		parts = append(parts, minio.CompletePart{PartNumber: len(parts) + 1})
		p.upload(key, id, &parts[len(parts)-1], b)
		if p.eof {
			break
		}
		i = 1 - i
		if b, err = p.fill(i); err != nil {
			return err
		}
		if len(b) == 0 && p.eof {
			break // the previous part was the last
		}
	}
	if err := p.wait(); err != nil {
		return err
	}
	if err := p.verify(); err != nil {
		return err
	}
	_, err = s.core.CompleteMultipartUpload(p.ctx, s.bucket, key, id, parts, minio.PutObjectOptions{})
	return p.cause(err)
}

// upload sends b as part *cp in the background; wait collects the result.
// b's buffer is not refilled before then: fill alternates between two.
func (p *put) upload(key, id string, cp *minio.CompletePart, b []byte) {
	ch := make(chan error, 1)
	go func() {
		part, err := p.s.core.PutObjectPart(p.ctx, p.s.bucket, key, id, cp.PartNumber, bytes.NewReader(b), int64(len(b)),
			minio.PutObjectPartOptions{Sha256Hex: sha256Hex(b), DisableContentSha256: true})
		cp.ETag = part.ETag
		ch <- err
	}()
	p.done = func() error { return <-ch }
}

// wait waits for the part upload in flight, if any.
func (p *put) wait() error {
	if p.done == nil {
		return nil
	}
	err := p.done()
	p.done = nil
	return p.cause(err)
}

// cause prefers the context's error to the request's, so a cancel is
// context.Canceled for errors.Is whatever minio-go made of it.
func (p *put) cause(err error) error {
	if err == nil {
		return nil
	}
	if cerr := p.ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w (%v)", cerr, err)
	}
	return classify(err)
}

func (p *put) release() {
	for i, b := range p.bufs {
		if b != nil {
			p.s.putPart(b)
			p.bufs[i] = nil
		}
	}
}

// abort discards an unfinished upload, even when ctx is cancelled: a
// cancelled Put must not leave its parts behind. If the server cannot be
// told (it is down), the upload stays until CleanTemp sweeps it.
func (s *Store) abort(ctx context.Context, key, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_ = s.core.AbortMultipartUpload(ctx, s.bucket, key, id)
}

// sha256Hex signs a request with its payload's hash (so the server checks
// every byte it receives), which minio-go would otherwise stream-sign on
// plain HTTP; hashing a part already in memory is cheaper than either.
func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func (s *Store) getPart() *[]byte  { return s.parts.Get().(*[]byte) }
func (s *Store) putPart(b *[]byte) { s.parts.Put(b) }
