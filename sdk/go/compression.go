package concord

import (
	"context"
	"strings"

	"connectrpc.com/connect"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
)

// CompressionStats describes how a value is, or would be, compressed.
type CompressionStats struct {
	// Algorithm is none, zlib, gzip or zstd.
	Algorithm      string
	OriginalSize   uint64
	CompressedSize uint64
	// Ratio is CompressedSize / OriginalSize, in percent.
	Ratio          float64
	SavingsBytes   int64
	SavingsPercent float64
	// Revision is the revision the answer was given at; Node the replica
	// that gave it.
	Revision uint64
	Node     string
}

// CompressionStats reports how the value stored under key is compressed. A
// missing key fails with ErrNotFound.
func (c *Client) CompressionStats(ctx context.Context, key string) (*CompressionStats, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	return c.compressionStats(ctx, &concordv1.CompressionStatsRequest{Source: &concordv1.CompressionStatsRequest_Key{Key: key}})
}

// EstimateCompression reports how the cluster's compression settings would
// compress value, without storing it.
func (c *Client) EstimateCompression(ctx context.Context, value []byte) (*CompressionStats, error) {
	if err := checkValue(value); err != nil {
		return nil, err
	}
	return c.compressionStats(ctx, &concordv1.CompressionStatsRequest{Source: &concordv1.CompressionStatsRequest_Value{Value: value}})
}

func (c *Client) compressionStats(ctx context.Context, req *concordv1.CompressionStatsRequest) (*CompressionStats, error) {
	var out *CompressionStats
	err := c.do(ctx, "compression_stats", readCall, true, func(ctx context.Context, e *endpoint) error {
		resp, err := e.kv.CompressionStats(ctx, connect.NewRequest(req))
		if err != nil {
			return err
		}
		m := resp.Msg
		out = &CompressionStats{
			Algorithm:    strings.ToLower(strings.TrimPrefix(m.GetAlgorithm().String(), "COMPRESSION_ALGORITHM_")),
			OriginalSize: m.GetOriginalSize(), CompressedSize: m.GetCompressedSize(), Ratio: m.GetCompressionRatio(),
			SavingsBytes: m.GetSavingsBytes(), SavingsPercent: m.GetSavingsPercent(),
			Revision: m.GetHeader().GetRevision(), Node: m.GetHeader().GetNodeId(),
		}
		return nil
	})
	return out, err
}
