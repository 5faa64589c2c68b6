"""Server state that outlives a request: stored Responses API responses and their events."""
