module github.com/scopemesh/scopemesh

go 1.26.6
