module github.com/berth-io/berth

go 1.26
