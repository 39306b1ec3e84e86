package adtrack

import (
	"reflect"
	"strings"
	"testing"
)

// A postback file may be JSON, indented with tabs as JSON tools write it:
// it reads as the same postbacks as YAML, and its problems are named by
// postback id and field as well.
func TestParsePostbacksReadsJSON(t *testing.T) {
	const json = "{\n\t\"postbacks\": [\n\t\t{\n\t\t\t\"id\": \"applift-ist\",\n\t\t\t\"network\": \"applift\",\n" +
		"\t\t\t\"event\": \"ist\",\n\t\t\t\"platform\": \"ios\",\n\t\t\t\"user_id\": 1,\n\t\t\t\"netcfg\": {\"offer\": 17},\n" +
		"\t\t\t\"headers\": {\"X-Offer\": \"{{.NetCfg.offer}}\"},\n" +
		"\t\t\t\"url\": \"http://localhost:8099/pix?idfa={{.Params.adid}}&ip={{.Event.IP}}&event={{.Event.Type}}\"\n\t\t}\n\t]\n}\n"
	const yaml = `
postbacks:
  - id: applift-ist
    network: applift
    event: ist
    platform: ios
    user_id: 1
    netcfg: {offer: 17}
    headers: {X-Offer: "{{.NetCfg.offer}}"}
    url: "http://localhost:8099/pix?idfa={{.Params.adid}}&ip={{.Event.IP}}&event={{.Event.Type}}"
`
	fromJSON, fromYAML := parsePostbacks(t, json), parsePostbacks(t, yaml)
	src := Source{Event: mustParse(t, exampleInstall)}
	a, err := fromJSON.Get("applift-ist").Render(src)
	if err != nil {
		t.Fatal(err)
	}
	b, err := fromYAML.Get("applift-ist").Render(src)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) || a.Header["X-Offer"] != "17" ||
		a.URL != "http://localhost:8099/pix?idfa=ECC27E57-1605-2714-CCCC-13DC6DFB742E&ip=188.103.123.173&event=ist" {
		t.Fatalf("from JSON %+v, from YAML %+v", a, b)
	}
	if p := fromJSON.Get("applift-ist"); p.UserID != "1" || p.Platform != PlatformIOS {
		t.Fatalf("from JSON %+v", p)
	}

	_, err = ParsePostbacks([]byte(`{"postbacks": [{"id": "p", "network": "n", "event": "ist", "platform": "windows", "url": "http://h/"}]}`))
	if err == nil || !strings.Contains(err.Error(), `postback "p" (line 1): platform: unknown platform "windows"`) {
		t.Fatalf("got %v", err)
	}
}
