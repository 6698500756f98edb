from callcenter.cli.main import app

app()
