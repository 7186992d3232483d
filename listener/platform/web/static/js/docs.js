// The API docs (/api/docs): Swagger UI, loaded by the page from the swagger-ui-bundle-v2 package,
// rendering this server's OpenAPI document. Reading the docs needs no token; signed in on the web page
// in this tab, "Try it out" sends that token (else the Authorize button takes one).

import { session } from "./api.js";

const ui = window.SwaggerUIBundle({
  url: "/api/docs/openapi.json",
  dom_id: "#docs",
  deepLinking: true,
  // Swagger UI would otherwise send the document to its makers' online validator for a badge.
  validatorUrl: null,
  onComplete() {
    if (session.token) ui.preauthorizeApiKey("bearerAuth", session.token);
  },
});
