// What the middleware / proxy variants protect: a plain route.
export function GET() {
  return Response.json({ hello: "world" });
}
