package concord

import (
	"context"
	"encoding/json"
	"fmt"
)

// Codec turns values into bytes and back.
type Codec interface {
	// ContentType is recorded with every value the codec writes.
	ContentType() string
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// JSON is the default codec: values written through it read back as the
// same JSON through REST (content type application/json).
var JSON Codec = jsonCodec{}

type jsonCodec struct{}

func (jsonCodec) ContentType() string                { return "application/json" }
func (jsonCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// Typed reads and writes values of type T through a Codec.
type Typed[T any] struct {
	c     *Client
	codec Codec
}

// NewTyped returns a typed view of the client using codec (JSON if nil).
func NewTyped[T any](c *Client, codec Codec) *Typed[T] {
	if codec == nil {
		codec = JSON
	}
	return &Typed[T]{c: c, codec: codec}
}

// Put encodes v and stores it. It takes the options of Client.Put; the
// content type is the codec's.
func (t *Typed[T]) Put(ctx context.Context, key string, v T, opts ...OpOption) (WriteResult, error) {
	data, err := t.codec.Marshal(v)
	if err != nil {
		return WriteResult{}, fmt.Errorf("%w: encode %q: %w", ErrInvalidArgument, key, err)
	}
	return t.c.Put(ctx, key, data, append(opts, WithContentType(t.codec.ContentType()))...)
}

// Get reads and decodes key. The KV is returned too, for its revisions.
func (t *Typed[T]) Get(ctx context.Context, key string, opts ...OpOption) (T, *KV, error) {
	var v T
	kv, err := t.c.Get(ctx, key, opts...)
	if err != nil {
		return v, nil, err
	}
	if err := t.codec.Unmarshal(kv.Value, &v); err != nil {
		return v, kv, fmt.Errorf("decode %q (%s): %w", key, kv.ContentType, err)
	}
	return v, kv, nil
}

// GetOr reads key, returning def when it does not exist.
func (t *Typed[T]) GetOr(ctx context.Context, key string, def T, opts ...OpOption) (T, error) {
	v, _, err := t.Get(ctx, key, opts...)
	if isNotFound(err) {
		return def, nil
	}
	return v, err
}
