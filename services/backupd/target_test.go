package backupd_test

import (
	"fmt"
	"testing"

	"github.com/concord-kv/concord/services/backupd"
)

func TestParseTarget(t *testing.T) {
	for raw, want := range map[string]backupd.Target{
		"s3://bucket":                {Scheme: "s3", Bucket: "bucket"},
		"s3://bucket/a/b/":           {Scheme: "s3", Bucket: "bucket", Path: "a/b"},
		"file:///var/backups":        {Scheme: "file", Path: "/var/backups"},
		"file://localhost/tmp/x/../": {Scheme: "file", Path: "/tmp"},
	} {
		got, err := backupd.ParseTarget(raw)
		if err != nil || got != want {
			t.Errorf("ParseTarget(%q) = %+v, %v; want %+v", raw, got, err, want)
		}
	}
	for _, raw := range []string{"", "s3://", "s3:///prefix", "file://host/dir", "file:relative", "http://x/y", "::"} {
		if _, err := backupd.ParseTarget(raw); err == nil {
			t.Errorf("ParseTarget(%q) accepted", raw)
		}
	}
}

func ExampleParseTarget() {
	t, _ := backupd.ParseTarget("s3://backups/concord/prod")
	fmt.Println(t.Bucket, t.Path, t)
	// Output: backups concord/prod s3://backups/concord/prod
}
