"""The HTTP API (FastAPI): campaigns for operators, summaries for Home Affairs and agencies, Twilio hooks."""
