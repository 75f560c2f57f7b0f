module ddgi

go 1.26.0

require (
	go.yaml.in/yaml/v3 v3.0.6
	golang.org/x/image v0.47.0
)
