package server

import "testing"

func TestSnakeCase(t *testing.T) {
	for in, want := range map[string]string{
		"Put": "put", "GetTTL": "get_ttl", "BatchGet": "batch_get", "CompressionStats": "compression_stats",
		"Status": "status", "TTLOf": "ttl_of",
	} {
		if got := snakeCase(in); got != want {
			t.Errorf("snakeCase(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSaneRequestID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"abc-123", true},
		{"4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7", true},
		{"", false},
		{"with space", false},
		{"new\nline", false},
		{"é", false},
		{string(make([]byte, 129)), false},
	}
	for _, tt := range tests {
		if got := saneRequestID(tt.id); got != tt.want {
			t.Errorf("saneRequestID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}

// TestOpenAPIDocumentBuilds checks the generation itself; TestOpenAPI in the
// gateway package runs every operation of it against a cluster.
func TestOpenAPIDocumentBuilds(t *testing.T) {
	s := &Server{}
	doc, raw, err := openAPIDocument(t.Context(), s.restRoutes())
	if err != nil {
		t.Fatal(err)
	}
	paths := map[string]bool{}
	for _, rt := range s.restRoutes() {
		paths[rt.path] = true
	}
	if len(raw) == 0 || doc.Paths.Len() != len(paths) || len(paths) < 17 {
		t.Errorf("document has %d paths, want the route table's %d (at least 17)", doc.Paths.Len(), len(paths))
	}
	for name, required := range map[string][]string{
		"PutRequest":   {"value"},
		"TouchRequest": {"ttl"},
		"Entry":        {"key", "revision", "create_revision", "mod_revision", "version"},
		"Error":        {"error"},
	} {
		s := doc.Components.Schemas[name]
		if s == nil {
			t.Errorf("no %s schema", name)
			continue
		}
		if got := s.Value.Required; len(got) != len(required) {
			t.Errorf("%s requires %v, want %v", name, got, required)
		}
		if s.Value.AdditionalProperties.Has == nil || *s.Value.AdditionalProperties.Has {
			t.Errorf("%s allows unknown fields", name)
		}
	}
	if ttl := doc.Components.Schemas["TouchRequest"].Value.Properties["ttl"].Value; ttl.Nullable || ttl.Min == nil || *ttl.Min != 0 {
		t.Errorf("TouchRequest.ttl = %+v, want a required non-null integer >= 0", ttl)
	}
	if v := doc.Components.Schemas["Entry"].Value.Properties["value"].Value; v.Type != nil || !v.Nullable {
		t.Errorf("Entry.value = %+v, want any JSON", v)
	}
}
