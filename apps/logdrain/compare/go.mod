module github.com/sluice-io/sluice/apps/logdrain/compare

go 1.26.8

require (
	github.com/heroku/x v0.5.3
	github.com/leodido/go-syslog/v4 v4.6.0
	github.com/sluice-io/sluice v0.0.0
)

require github.com/pkg/errors v0.9.1 // indirect

replace github.com/sluice-io/sluice => ../../..
