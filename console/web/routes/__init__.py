"""One router per audience; every route is named, and every name is in `console.web.rbac.ROUTE_ROLES`."""
