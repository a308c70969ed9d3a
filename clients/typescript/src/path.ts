/** A path from a template whose values are each encoded as one path segment. */
export function path(strings: TemplateStringsArray, ...values: (string | number)[]): string {
  return strings.reduce((out, s, i) => out + s + (i < values.length ? segment(values[i]) : ""), "");
}

/**
 * One path segment, percent-encoded. Empty, `.` and `..` are refused: `URL` drops or folds
 * them (even as `%2e`) into another route, so `complete(".")` would post to the batch endpoint.
 */
function segment(value: string | number): string {
  const text = String(value);
  if (text === "" || text === "." || text === "..") {
    throw new TypeError(`${JSON.stringify(text)} cannot be a name or id in a URL path`);
  }
  return encodeURIComponent(text);
}
