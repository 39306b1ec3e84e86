package adtrack_test

import (
	"fmt"

	"github.com/sluice-io/sluice/apps/adtrack"
)

// A postback for installs on iOS, rendered for an install whose device id
// tries to add a parameter of its own.
func ExamplePostback_Render() {
	ps, err := adtrack.ParsePostbacks([]byte(`
postbacks:
  - id: applift-ist
    network: applift
    event: ist
    platform: ios
    url: "http://localhost:8099/pix?idfa={{.Params.adid}}&ip={{.Event.IP}}&event={{.Event.Type}}"
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	ev, err := adtrack.ParseEvent([]byte("/t/ist country=DE&ip=3160898477&platform=ios&ts=1465287056 adid=ECC27E57%26event%3Dpay"))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, p := range ps.Select(adtrack.Query{Event: ev.Type(), Platform: ev.Meta.Platform}) {
		req, err := p.Render(adtrack.Source{Event: ev})
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(req.Method, req.URL)
	}
	// Output:
	// GET http://localhost:8099/pix?idfa=ECC27E57%26event%3Dpay&ip=188.103.123.173&event=ist
}
