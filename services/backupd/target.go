// Package backupd will stream Concord snapshots to S3-compatible storage or a
// directory (see the backupd issue). Today it holds the target syntax; the
// file format is in package backupfile.
package backupd

import (
	"fmt"
	"net/url"
	"path"
	"strings"
)

// Target is where backups go: s3://bucket/prefix or file:///dir.
type Target struct {
	Scheme string // "s3" or "file"
	Bucket string // s3 only
	Path   string // key prefix (s3, no leading slash) or absolute directory (file)
}

// ParseTarget reads a backup target URL.
func ParseTarget(raw string) (Target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Target{}, fmt.Errorf("backup target %q: %w", raw, err)
	}
	switch u.Scheme {
	case "s3":
		if u.Host == "" {
			return Target{}, fmt.Errorf("backup target %q: no bucket (want s3://bucket/prefix)", raw)
		}
		return Target{Scheme: "s3", Bucket: u.Host, Path: strings.Trim(path.Clean("/"+u.Path), "/")}, nil
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return Target{}, fmt.Errorf("backup target %q: file URLs take an absolute path (file:///dir)", raw)
		}
		if u.Path == "" || !path.IsAbs(u.Path) {
			return Target{}, fmt.Errorf("backup target %q: no directory (want file:///dir)", raw)
		}
		return Target{Scheme: "file", Path: path.Clean(u.Path)}, nil
	}
	return Target{}, fmt.Errorf("backup target %q: scheme must be s3 or file", raw)
}

// String formats the target as a URL.
func (t Target) String() string {
	if t.Scheme == "s3" {
		return "s3://" + path.Join(t.Bucket, t.Path)
	}
	return "file://" + t.Path
}
