"""The composition root and the request pipeline that ties protocol, auth and service together."""
