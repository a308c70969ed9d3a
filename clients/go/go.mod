module github.com/rota-dev/rota/clients/go

go 1.19
