// Package backupfile reads and writes Concord backup files.
//
// A backup is a point-in-time FSM snapshot (the replica's snapshot stream:
// a length-delimited SnapshotHeader, then length-delimited SnapshotRecords)
// wrapped so it can be checked on its own:
//
//	magic    "CONCORDBACKUP\n"
//	header   uvarint length, then a JSON Header
//	chunks   uvarint length > 0, then a zstd frame of at most ChunkSize
//	         bytes of the snapshot stream; repeated
//	end      uvarint 0
//	trailer  SHA-256 of every byte before it (32 bytes)
//
// Both sides stream: a Writer never holds more than one chunk, a Reader
// never more than one chunk and its decoded bytes, so a backup of any size
// goes to and from S3 without being buffered whole. A Reader reports a bad
// file as ErrCorrupt, a failure of the reader under it (a reset
// connection) as that error and not ErrCorrupt, and never panics; Verify reads a whole file and checks
// it before anything is restored from it.
//
// The trailer is a checksum, not a signature: it catches truncation, bit
// rot and a damaged upload, not a file someone rewrote on purpose (who can
// recompute it). Whoever can write the bucket can write a backup; protect
// the bucket accordingly. Verify checks one copy of the bytes: a restore
// must read that same copy (a downloaded file, or a pinned S3 object
// version), not fetch the object again.
package backupfile

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/klauspost/compress/zstd"
)

var (
	errWriteAfterClose = errors.New("backupfile: write after Close")
	// errRead marks a failure of the underlying reader, which says nothing
	// about the file.
	errRead = errors.New("read backup")
)

// Magic opens every backup file.
const Magic = "CONCORDBACKUP\n"

// FormatVersion is the version of the layout this package writes and reads.
const FormatVersion = 1

// ChunkSize is the most snapshot-stream bytes one chunk holds.
const ChunkSize = 1 << 20

const (
	maxHeaderSize = 64 << 10
	// maxFrameSize bounds a compressed chunk: zstd never grows incompressible
	// input by more than a small fraction.
	maxFrameSize = ChunkSize + ChunkSize/8 + 1024
)

// CompressionZstd is the only compression of format 1.
const CompressionZstd = "zstd"

var (
	// ErrCorrupt reports a file that is truncated, altered or malformed.
	ErrCorrupt = errors.New("backup file is corrupt")
	// ErrUnsupported reports a backup of a format or compression this
	// version cannot read.
	ErrUnsupported = errors.New("backup format not supported")
)

// Header describes a backup. It is written as JSON at the start of the file.
type Header struct {
	FormatVersion   int       `json:"format_version"`
	ClusterID       string    `json:"cluster_id"`
	Index           uint64    `json:"index"` // raft index of the snapshot
	Term            uint64    `json:"term"`
	CreatedAt       time.Time `json:"created_at"`
	EntryCount      uint64    `json:"entry_count"`
	Node            string    `json:"node"` // the replica that took the snapshot
	SoftwareVersion string    `json:"software_version"`
	Compression     string    `json:"compression"`
}

// Writer writes one backup file. Write takes the snapshot stream; Close
// must be called to end the file.
type Writer struct {
	dst    io.Writer
	w      io.Writer // dst, and sum
	sum    hash.Hash
	enc    *zstd.Encoder
	buf    []byte // pending stream bytes, < ChunkSize
	out    []byte // compressed chunk scratch
	err    error
	closed bool
}

// NewWriter writes the magic and hdr to w and returns a Writer for the
// snapshot stream. FormatVersion and Compression are filled in. A header
// whose JSON exceeds 64 KiB is refused: no Reader would accept it.
func NewWriter(w io.Writer, hdr Header) (*Writer, error) {
	hdr.FormatVersion, hdr.Compression = FormatVersion, CompressionZstd
	js, err := json.Marshal(hdr)
	if err != nil {
		return nil, fmt.Errorf("encode backup header: %w", err)
	}
	if len(js) > maxHeaderSize {
		return nil, fmt.Errorf("backup header is %d bytes of JSON, more than the %d a reader accepts", len(js), maxHeaderSize)
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	sum := sha256.New()
	bw := &Writer{dst: w, w: io.MultiWriter(w, sum), sum: sum, enc: enc, buf: make([]byte, 0, ChunkSize)}
	bw.put([]byte(Magic))
	bw.put(binary.AppendUvarint(nil, uint64(len(js))))
	bw.put(js)
	if bw.err != nil {
		_ = enc.Close()
		return nil, bw.err
	}
	return bw, nil
}

func (w *Writer) put(p []byte) {
	if w.err == nil {
		_, w.err = w.w.Write(p)
	}
}

// Write adds snapshot-stream bytes.
func (w *Writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errWriteAfterClose
	}
	n := len(p)
	for len(p) > 0 && w.err == nil {
		k := min(len(p), ChunkSize-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		if len(w.buf) == ChunkSize {
			w.flush()
		}
	}
	if w.err != nil {
		return 0, w.err
	}
	return n, nil
}

func (w *Writer) flush() {
	if len(w.buf) == 0 {
		return
	}
	w.out = w.enc.EncodeAll(w.buf, w.out[:0])
	w.put(binary.AppendUvarint(nil, uint64(len(w.out))))
	w.put(w.out)
	w.buf = w.buf[:0]
}

// Close writes the last chunk, the end marker and the trailer. It does not
// close the underlying writer. Calling it again does nothing and returns
// the same result.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	w.flush()
	w.put([]byte{0})
	if w.err == nil {
		_, w.err = w.dst.Write(w.sum.Sum(nil))
	}
	_ = w.enc.Close()
	return w.err
}

// Reader reads one backup file. Read returns the snapshot stream; at its end
// Read checks the trailer and returns io.EOF only if the file is intact.
type Reader struct {
	src *source
	hdr Header
	dec *zstd.Decoder
	in  []byte
	out []byte // decoded chunk
	pos int    // read position in out
	err error
}

// source reads the file's bytes and hashes each byte it hands out (a
// bufio.Reader reads ahead, so the hash is taken here, over what was
// consumed).
type source struct {
	br  *bufio.Reader
	sum hash.Hash
	err error // the first error of the underlying reader other than io.EOF
}

func (s *source) Read(p []byte) (int, error) {
	n, err := s.br.Read(p)
	s.sum.Write(p[:n])
	s.note(err)
	return n, err
}

func (s *source) ReadByte() (byte, error) {
	b, err := s.br.ReadByte()
	if err == nil {
		s.sum.Write([]byte{b})
	}
	s.note(err)
	return b, err
}

func (s *source) note(err error) {
	if err != nil && !errors.Is(err, io.EOF) && s.err == nil {
		s.err = err
	}
}

// bad reports what is wrong: the underlying reader's error if it failed
// (a reset connection is not a corrupt file), else ErrCorrupt with what.
func (s *source) bad(format string, args ...any) error {
	if s.err != nil {
		return fmt.Errorf("%w: %w", errRead, s.err)
	}
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// NewReader reads the magic and header from r.
func NewReader(r io.Reader) (*Reader, error) {
	src := &source{br: bufio.NewReaderSize(r, 64<<10), sum: sha256.New()}
	magic := make([]byte, len(Magic))
	if _, err := io.ReadFull(src, magic); err != nil || string(magic) != Magic {
		return nil, src.bad("not a Concord backup (bad magic)")
	}
	n, err := binary.ReadUvarint(src)
	if err != nil || n == 0 || n > maxHeaderSize {
		return nil, src.bad("bad header length")
	}
	js := make([]byte, n)
	if _, err := io.ReadFull(src, js); err != nil {
		return nil, src.bad("truncated header")
	}
	rd := &Reader{src: src}
	if err := json.Unmarshal(js, &rd.hdr); err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrCorrupt, err)
	}
	if rd.hdr.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("%w: format version %d (this version reads %d)", ErrUnsupported, rd.hdr.FormatVersion, FormatVersion)
	}
	if rd.hdr.Compression != CompressionZstd {
		return nil, fmt.Errorf("%w: compression %q", ErrUnsupported, rd.hdr.Compression)
	}
	rd.dec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(2*ChunkSize))
	if err != nil {
		return nil, err
	}
	return rd, nil
}

// Header is the backup's header.
func (r *Reader) Header() Header { return r.hdr }

// Read returns the next bytes of the snapshot stream.
func (r *Reader) Read(p []byte) (int, error) {
	for r.pos == len(r.out) {
		if r.err != nil {
			return 0, r.err
		}
		r.err = r.next()
	}
	n := copy(p, r.out[r.pos:])
	r.pos += n
	return n, nil
}

// next decodes the next chunk or, at the end marker, checks the trailer and
// sets r.err to io.EOF.
func (r *Reader) next() error {
	r.out, r.pos = r.out[:0], 0
	n, err := binary.ReadUvarint(r.src)
	if err != nil {
		return r.src.bad("truncated before the end marker")
	}
	if n == 0 {
		return r.trailer()
	}
	if n > maxFrameSize {
		return fmt.Errorf("%w: chunk of %d bytes (at most %d)", ErrCorrupt, n, maxFrameSize)
	}
	if cap(r.in) < int(n) {
		r.in = make([]byte, n)
	}
	r.in = r.in[:n]
	if _, err := io.ReadFull(r.src, r.in); err != nil {
		return r.src.bad("truncated chunk")
	}
	out, err := r.dec.DecodeAll(r.in, r.out[:0])
	if err != nil {
		return fmt.Errorf("%w: chunk: %w", ErrCorrupt, err)
	}
	if len(out) == 0 || len(out) > ChunkSize {
		return fmt.Errorf("%w: chunk decodes to %d bytes (1 to %d)", ErrCorrupt, len(out), ChunkSize)
	}
	r.out = out
	return nil
}

func (r *Reader) trailer() error {
	want := r.src.sum.Sum(nil)
	got := make([]byte, sha256.Size)
	if _, err := io.ReadFull(r.src.br, got); err != nil {
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: %w", errRead, err)
		}
		return r.src.bad("truncated trailer")
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%w: SHA-256 mismatch", ErrCorrupt)
	}
	switch _, err := r.src.br.ReadByte(); {
	case err == nil:
		return fmt.Errorf("%w: bytes after the trailer", ErrCorrupt)
	case !errors.Is(err, io.EOF):
		return fmt.Errorf("%w: %w", errRead, err)
	}
	return io.EOF
}

// Close releases the decoder. It does not close the underlying reader.
func (r *Reader) Close() error {
	r.dec.Close()
	return nil
}
