package concord_test

import (
	"testing"

	concord "github.com/concord-kv/concord/sdk/go"
)

func TestFlag(t *testing.T) {
	cl := newClient(t, cluster(t).URLs())
	ctx := t.Context()
	for key, value := range map[string]string{
		"flags/test-enabled":      "enabled",
		"flags/test-disabled":     "disabled",
		"flags/test-json-true":    "true",
		"flags/test-json-false":   "false",
		"flags/test-quoted":       `"enabled"`,
		"flags/test-not-a-bool":   "maybe",
		"flags/test-rollout":      "25",
		"flags/test-variant-json": `{"variant":"blue"}`,
	} {
		if _, err := cl.Put(ctx, key, []byte(value)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name    string
		def     bool
		want    bool
		wantErr bool
	}{
		{name: "test-enabled", want: true},
		{name: "test-disabled", def: true, want: false},
		{name: "test-json-true", want: true},
		{name: "test-json-false", def: true, want: false},
		{name: "test-quoted", want: true},
		{name: "test-missing", def: true, want: true},
		{name: "test-missing", def: false, want: false},
		{name: "test-not-a-bool", def: true, want: true, wantErr: true},
	} {
		got, err := cl.Flag(ctx, tc.name, tc.def, concord.Consistency(concord.Strong))
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("Flag(%q, %v) = %v, %v; want %v (error: %v)", tc.name, tc.def, got, err, tc.want, tc.wantErr)
		}
	}

	if got, err := concord.GetFlag(ctx, cl, "test-rollout", 100); err != nil || got != 25 {
		t.Errorf("GetFlag(rollout) = %v, %v; want 25", got, err)
	}
	if got, err := concord.GetFlag(ctx, cl, "test-missing", 100); err != nil || got != 100 {
		t.Errorf("GetFlag(missing) = %v, %v; want the default 100", got, err)
	}
	type variant struct{ Variant string }
	if got, err := concord.GetFlag(ctx, cl, "test-variant-json", variant{"red"}); err != nil || got.Variant != "blue" {
		t.Errorf("GetFlag(variant) = %+v, %v; want blue", got, err)
	}
	if _, err := concord.GetFlag(ctx, cl, "test-enabled", false); err == nil {
		t.Error(`GetFlag[bool] of the string "enabled" decoded; want a decode error (use Flag)`)
	}
}
