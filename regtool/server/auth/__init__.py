"""Authentication and authorization for `regtool serve`: htpasswd (Basic) and token
(Bearer) logins, access rules, the login throttle, and the guard that applies them."""
