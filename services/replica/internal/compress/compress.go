// Package compress compresses stored values with zlib, gzip or zstd.
//
// Compression is decided where a write enters the cluster: values larger than
// the configured threshold (or any value when a request forces it) are
// compressed before they are proposed to Raft, so the log, the snapshots and
// every replica's memory hold the compressed bytes. Reads decompress
// transparently.
package compress

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"

	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// Algorithm is a stored value's compression.
type Algorithm = concordv1.CompressionAlgorithm

// The algorithms.
const (
	None = concordv1.CompressionAlgorithm_COMPRESSION_ALGORITHM_NONE
	Zlib = concordv1.CompressionAlgorithm_COMPRESSION_ALGORITHM_ZLIB
	Gzip = concordv1.CompressionAlgorithm_COMPRESSION_ALGORITHM_GZIP
	Zstd = concordv1.CompressionAlgorithm_COMPRESSION_ALGORITHM_ZSTD
)

// DefaultThreshold is the size above which values are compressed by default.
const DefaultThreshold = 1024

// ErrCorrupt is returned when stored bytes do not decompress.
var ErrCorrupt = errors.New("compressed value is corrupt")

// Config says when and how to compress.
type Config struct {
	// Enabled turns automatic compression on. A request may still force it.
	Enabled bool
	// Algorithm is Zlib, Gzip or Zstd.
	Algorithm Algorithm
	// Level is 0-9 for zlib and gzip (0 = store, 9 = best) and 1-4 for zstd
	// (fastest, default, better, best). -1 picks the algorithm's default.
	Level int
	// ThresholdBytes: values larger than this are compressed.
	ThresholdBytes int
}

// DefaultConfig is zlib at level 6 above 1 KiB, as the product docs describe.
func DefaultConfig() Config {
	return Config{Enabled: true, Algorithm: Zlib, Level: 6, ThresholdBytes: DefaultThreshold}
}

// ParseAlgorithm reads "zlib", "gzip", "zstd" or "none".
func ParseAlgorithm(s string) (Algorithm, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "zlib":
		return Zlib, nil
	case "gzip":
		return Gzip, nil
	case "zstd":
		return Zstd, nil
	case "none", "off":
		return None, nil
	}
	return 0, fmt.Errorf("unknown compression algorithm %q (want zlib, gzip, zstd or none)", s)
}

// Name is the lower-case name of an algorithm.
func Name(a Algorithm) string {
	switch a {
	case Zlib:
		return "zlib"
	case Gzip:
		return "gzip"
	case Zstd:
		return "zstd"
	}
	return "none"
}

// Validate checks the algorithm and level.
func (c Config) Validate() error {
	switch c.Algorithm {
	case Zlib, Gzip:
		if c.Level < -1 || c.Level > 9 {
			return fmt.Errorf("compression level %d out of range -1..9 for %s", c.Level, Name(c.Algorithm))
		}
	case Zstd:
		if c.Level < -1 || c.Level > 4 {
			return fmt.Errorf("compression level %d out of range -1..4 for zstd", c.Level)
		}
	case None:
	default:
		return fmt.Errorf("unknown compression algorithm %v", c.Algorithm)
	}
	if c.ThresholdBytes < 0 {
		return fmt.Errorf("compression threshold %d must be >= 0", c.ThresholdBytes)
	}
	return nil
}

// Mode is a request's override.
type Mode = concordv1.CompressMode

// Compressor applies a Config. It is safe for concurrent use.
type Compressor struct {
	cfg      Config
	zstdEnc  *zstd.Encoder
	zstdOnce sync.Once
}

// New returns a Compressor for a validated config.
func New(cfg Config) (*Compressor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Compressor{cfg: cfg}, nil
}

// Config returns the configuration.
func (c *Compressor) Config() Config { return c.cfg }

// Encode decides whether to compress value and does so. It returns the bytes to
// store and their algorithm. A compressed result that is not smaller than the
// input is discarded unless the request forces compression.
func (c *Compressor) Encode(value []byte, mode Mode) ([]byte, Algorithm, error) {
	algo := c.cfg.Algorithm
	switch {
	case mode == concordv1.CompressMode_COMPRESS_MODE_OFF || algo == None:
		return value, None, nil
	case mode == concordv1.CompressMode_COMPRESS_MODE_FORCE:
	case !c.cfg.Enabled || len(value) <= c.cfg.ThresholdBytes:
		return value, None, nil
	}
	out, err := c.compress(algo, value)
	if err != nil {
		return nil, 0, err
	}
	if len(out) >= len(value) && mode != concordv1.CompressMode_COMPRESS_MODE_FORCE {
		return value, None, nil
	}
	return out, algo, nil
}

func (c *Compressor) compress(algo Algorithm, value []byte) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(len(value)/2 + 64)
	var w io.WriteCloser
	var err error
	switch algo {
	case Zlib:
		w, err = zlib.NewWriterLevel(&buf, c.level())
	case Gzip:
		w, err = gzip.NewWriterLevel(&buf, c.level())
	case Zstd:
		return c.zstdEncoder().EncodeAll(value, make([]byte, 0, len(value)/2+64)), nil
	default:
		return nil, fmt.Errorf("unknown compression algorithm %v", algo)
	}
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(value); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (c *Compressor) level() int {
	if c.cfg.Level < 0 {
		return 6
	}
	return c.cfg.Level
}

func (c *Compressor) zstdEncoder() *zstd.Encoder {
	c.zstdOnce.Do(func() {
		level := zstd.SpeedDefault
		if c.cfg.Level > 0 {
			level = zstd.EncoderLevel(c.cfg.Level)
		}
		// Errors only come from invalid options, and these are valid.
		c.zstdEnc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(1))
	})
	return c.zstdEnc
}

var zstdDecoder = sync.OnceValue(func() *zstd.Decoder {
	d, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(64<<20))
	return d
})

// Decode returns the original bytes of a stored value. maxSize bounds the
// output so a corrupt or hostile value cannot exhaust memory.
func Decode(stored []byte, algo Algorithm, maxSize int) ([]byte, error) {
	var r io.ReadCloser
	var err error
	switch algo {
	case None, concordv1.CompressionAlgorithm_COMPRESSION_ALGORITHM_UNSPECIFIED:
		return stored, nil
	case Zlib:
		r, err = zlib.NewReader(bytes.NewReader(stored))
	case Gzip:
		r, err = gzip.NewReader(bytes.NewReader(stored))
	case Zstd:
		// Every value we compress is one frame that records its size. An
		// empty input decodes to nothing without error, and a frame that
		// declares more than maxSize would be allocated in full before the
		// check below, so both are refused up front.
		var h zstd.Header
		if err := h.Decode(stored); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		if h.HasFCS && h.FrameContentSize > uint64(maxSize) {
			return nil, fmt.Errorf("%w: declares %d bytes, larger than %d", ErrCorrupt, h.FrameContentSize, maxSize)
		}
		out, err := zstdDecoder().DecodeAll(stored, nil)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		if len(out) > maxSize {
			return nil, fmt.Errorf("%w: larger than %d bytes", ErrCorrupt, maxSize)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("%w: unknown algorithm %v", ErrCorrupt, algo)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	defer func() { _ = r.Close() }()
	out, err := io.ReadAll(io.LimitReader(r, int64(maxSize)+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if len(out) > maxSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrCorrupt, maxSize)
	}
	return out, nil
}

// Stats describes how well a value compresses.
type Stats struct {
	Algorithm      Algorithm
	OriginalSize   int
	CompressedSize int
	// RatioPercent is CompressedSize / OriginalSize * 100.
	RatioPercent float64
	SavingsBytes int
	// SavingsPercent is 100 - RatioPercent.
	SavingsPercent float64
}

// StatsOf computes stats from the two sizes.
func StatsOf(algo Algorithm, original, compressed int) Stats {
	s := Stats{Algorithm: algo, OriginalSize: original, CompressedSize: compressed, SavingsBytes: original - compressed}
	if original > 0 {
		s.RatioPercent = round2(float64(compressed) / float64(original) * 100)
		s.SavingsPercent = round2(100 - float64(compressed)/float64(original)*100)
	}
	return s
}

// Stats compresses value with the configured algorithm (whatever its size)
// and reports the result.
func (c *Compressor) Stats(value []byte) (Stats, error) {
	algo := c.cfg.Algorithm
	if algo == None {
		return StatsOf(None, len(value), len(value)), nil
	}
	out, err := c.compress(algo, value)
	if err != nil {
		return Stats{}, err
	}
	return StatsOf(algo, len(value), len(out)), nil
}

// round2 rounds half away from zero to two decimals (savings are negative
// when compression grows a value).
func round2(f float64) float64 {
	return math.Round(f*100) / 100
}
