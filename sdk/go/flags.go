package concord

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// flagKey returns the key of feature flag name.
func flagKey(name string) string { return "flags/" + name }

// Flag reads the boolean feature flag name (key "flags/"+name) and returns
// def if it is not set. The value may be JSON true or false, or the strings
// "enabled" or "disabled" (bare or JSON-quoted; "true", "false", "on",
// "off", "1" and "0" are accepted too, in any case). Options: Consistency,
// MinRevision.
func (c *Client) Flag(ctx context.Context, name string, def bool, opts ...OpOption) (bool, error) {
	key := flagKey(name)
	kv, err := c.Get(ctx, key, opts...)
	if isNotFound(err) {
		return def, nil
	}
	if err != nil {
		return def, err
	}
	s := strings.TrimSpace(string(kv.Value))
	var quoted string
	if json.Unmarshal(kv.Value, &quoted) == nil {
		s = strings.TrimSpace(quoted)
	}
	switch strings.ToLower(s) {
	case "true", "enabled", "on", "1":
		return true, nil
	case "false", "disabled", "off", "0":
		return false, nil
	}
	return def, fmt.Errorf("flag %q: value %q is not a boolean", key, kv.Value)
}

// GetFlag reads the feature flag name (key "flags/"+name) as a JSON value of
// type T (a rollout percentage, a variant name, a struct) and returns def if
// it is not set. Options: Consistency, MinRevision.
func GetFlag[T any](ctx context.Context, c *Client, name string, def T, opts ...OpOption) (T, error) {
	return NewTyped[T](c, JSON).GetOr(ctx, flagKey(name), def, opts...)
}
