"""Word lists for the offline chat-prompt generator (`prompts.py`).

Written for this project (no external text); see train/data/SOURCES.md."""

NAMES = [
    "Alice", "Ben", "Carla", "Deepak", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jamal", "Kira",
    "Liam", "Maya", "Nikolai", "Olu", "Priya", "Quentin", "Rosa", "Sam", "Tara", "Umar", "Vera",
    "Wen", "Ximena", "Yusuf", "Zoe", "Marco", "Aisha", "Tom", "Lena", "Omar", "Sofia", "Noah", "Mia",
]
PRONOUN = {n: ("she" if n in {
    "Alice", "Carla", "Elena", "Grace", "Ines", "Kira", "Maya", "Priya", "Rosa", "Tara", "Vera",
    "Ximena", "Zoe", "Aisha", "Lena", "Sofia", "Mia", "Wen"} else "he") for n in NAMES}

ITEMS = [
    ("apple", "apples"), ("book", "books"), ("marble", "marbles"), ("pencil", "pencils"),
    ("cookie", "cookies"), ("sticker", "stickers"), ("card", "cards"), ("egg", "eggs"),
    ("shell", "shells"), ("coin", "coins"), ("flower", "flowers"), ("cupcake", "cupcakes"),
    ("toy car", "toy cars"), ("notebook", "notebooks"), ("orange", "oranges"), ("stamp", "stamps"),
]
PLACES = ["the market", "the library", "school", "the park", "the bakery", "the museum",
          "the train station", "the farm", "the beach", "the office", "the zoo", "the gym"]
UNITS_PRICE = [("pen", 2), ("sandwich", 6), ("ticket", 12), ("notebook", 3), ("mug", 8),
               ("plant", 15), ("shirt", 20), ("bag of rice", 9), ("game", 35), ("lamp", 27)]

CODE_TASKS = [
    "reverses a string", "checks whether a number is prime", "returns the n-th Fibonacci number",
    "counts the vowels in a sentence", "removes duplicates from a list while keeping order",
    "merges two sorted lists", "computes the factorial of a number",
    "finds the largest element in a list", "checks whether a string is a palindrome",
    "converts Celsius to Fahrenheit", "sums the digits of an integer",
    "flattens a nested list", "counts how often each word appears in a text",
    "returns the greatest common divisor of two numbers", "sorts a list of dictionaries by a key",
    "reads a CSV file and prints the number of rows", "validates an email address",
    "computes the average of a list of numbers", "finds the second largest number in a list",
    "checks whether two strings are anagrams", "converts a binary string to an integer",
    "returns all even numbers from a list", "capitalizes the first letter of every word",
    "implements binary search", "implements bubble sort", "computes the median of a list",
    "rotates a list by k positions", "transposes a matrix", "finds the intersection of two lists",
    "generates all subsets of a set", "counts the lines in a file", "checks for balanced brackets",
    "computes the power set of a list", "returns the longest word in a sentence",
    "converts a Roman numeral to an integer", "implements a stack with push and pop",
    "implements a queue using two stacks", "computes the dot product of two vectors",
    "finds the missing number in a list from 1 to n", "chunks a list into pieces of size n",
    "computes compound interest", "checks whether a year is a leap year",
    "returns the first non-repeating character of a string", "implements FizzBuzz",
    "computes the area of a circle", "parses a date string like 2024-03-15",
    "counts the uppercase letters in a string", "memoizes a recursive function",
    "implements a simple linked list", "finds all prime numbers below n",
]
LANGUAGES = ["Python", "Python", "Python", "JavaScript", "Java", "C", "C++", "Rust", "Go",
             "TypeScript", "Ruby", "Bash"]
CODE_CONCEPTS = [
    "recursion", "a hash table", "big-O notation", "a closure", "object-oriented programming",
    "a REST API", "garbage collection", "a race condition", "unit testing", "version control with git",
    "a linked list", "dynamic programming", "a binary search tree", "exceptions", "type hints in Python",
    "list comprehensions in Python", "an interpreter versus a compiler", "a database index",
    "SQL joins", "asynchronous programming", "a decorator in Python", "the difference between a list and a tuple",
    "regular expressions", "a virtual environment", "a stack overflow", "memoization", "inheritance",
    "an API key", "JSON", "caching", "multithreading", "a pointer in C", "immutability",
]

CONCEPTS = [
    "photosynthesis", "gravity", "the water cycle", "inflation", "supply and demand", "black holes",
    "the immune system", "climate change", "plate tectonics", "DNA", "evolution by natural selection",
    "the greenhouse effect", "electricity", "magnetism", "the Pythagorean theorem", "probability",
    "compound interest", "the French Revolution", "the Renaissance", "democracy", "the Roman Empire",
    "the Industrial Revolution", "vaccines", "the speed of light", "machine learning", "neural networks",
    "the internet", "blockchain", "renewable energy", "nuclear fusion", "the solar system",
    "the moon's phases", "tides", "rainbows", "earthquakes", "volcanoes", "the human heart",
    "sleep", "memory", "the stock market", "taxes", "a budget", "the scientific method",
    "atoms", "chemical reactions", "acids and bases", "friction", "momentum", "energy conservation",
    "the carbon cycle", "ecosystems", "biodiversity", "antibiotics", "viruses", "the printing press",
    "the Cold War", "the Great Wall of China", "ancient Egypt", "the Silk Road", "photosynthesis in algae",
    "weather forecasting", "ocean currents", "the ozone layer", "recycling", "composting",
    "meditation", "exercise and health", "nutrition", "the placebo effect", "opportunity cost",
    "interest rates", "GDP", "globalization", "the United Nations", "human rights", "philosophy",
    "ethics", "logic", "statistics", "the mean and the median", "fractions", "percentages",
    "prime numbers", "algebra", "geometry", "calculus", "infinity", "encryption", "passwords",
    "cloud computing", "operating systems", "batteries", "solar panels", "airplanes flying",
    "how bees make honey", "bird migration", "the life cycle of a butterfly", "seasons",
]
PAIRS = [
    ("weather", "climate"), ("a virus", "a bacterium"), ("speed", "velocity"), ("mass", "weight"),
    ("a democracy", "a republic"), ("RAM", "storage"), ("a simile", "a metaphor"),
    ("an alligator", "a crocodile"), ("a meteor", "a meteorite"), ("affect", "effect"),
    ("HTTP", "HTTPS"), ("a stock", "a bond"), ("socialism", "capitalism"), ("a lake", "a pond"),
    ("Python", "JavaScript"), ("a compiler", "an interpreter"), ("a hurricane", "a tornado"),
    ("empathy", "sympathy"), ("a moth", "a butterfly"), ("baking soda", "baking powder"),
    ("a CPU", "a GPU"), ("a list", "a set"), ("debit cards", "credit cards"), ("a fruit", "a vegetable"),
    ("AC", "DC electricity"), ("an epidemic", "a pandemic"), ("a theory", "a hypothesis"),
]
WHY = [
    "the sky is blue", "leaves change color in autumn", "ice floats on water", "we have seasons",
    "cats purr", "bread rises", "the ocean is salty", "we dream", "onions make us cry",
    "the sun sets in the west", "metal feels cold", "birds fly south for the winter",
    "people yawn", "stars twinkle", "the moon has craters", "coffee keeps us awake",
    "planes leave white trails", "soap cleans", "some people are left-handed", "dogs wag their tails",
]
HOW = [
    "a refrigerator", "a bicycle", "a search engine", "a microwave oven", "GPS", "a camera",
    "a vaccine", "an electric car", "a touchscreen", "Wi-Fi", "a credit card", "a thermostat",
    "a compass", "a rocket", "a wind turbine", "an elevator", "a 3D printer", "email",
]

TOPICS = [
    "the ocean", "autumn", "a rainy day", "friendship", "the city at night", "a cat", "mountains",
    "coffee", "the moon", "a lost key", "time", "spring flowers", "a library", "a train journey",
    "the first snow", "an old tree", "a robot learning to paint", "a lighthouse", "the desert",
    "home", "courage", "a summer festival", "a quiet morning", "the stars", "a river",
]
CHARACTERS = [
    "a young wizard", "a curious robot", "a retired detective", "a brave mouse", "a lonely astronaut",
    "a baker", "a dragon who is afraid of fire", "a time traveler", "a talking dog", "a pirate captain",
    "a shy student", "an old fisherman", "a clever fox", "a knight", "a scientist",
]
EVENTS = [
    "finds a mysterious map", "loses their memory", "wins a contest", "discovers a hidden door",
    "makes a new friend", "gets lost in a forest", "travels to another planet", "solves a puzzle",
    "learns to fly", "opens a small shop", "meets their future self", "saves a village",
]
RECIPIENTS = [
    "my manager", "a colleague", "my landlord", "a customer", "my teacher", "a friend",
    "the school principal", "a hotel", "my neighbor", "a job recruiter",
]
EMAIL_SUBJECTS = [
    "asking for a day off", "a delayed project", "a broken heater", "thanking them for their help",
    "rescheduling a meeting", "a job application", "a noise complaint", "a refund request",
    "an invitation to a party", "feedback on a presentation", "a missing package",
]
ACTIVITIES = [
    "studying for exams", "saving money", "staying productive at home", "learning a new language",
    "sleeping better", "running a first marathon", "cooking healthy meals", "public speaking",
    "reducing stress", "starting a garden", "traveling on a budget", "writing a resume",
    "learning to code", "keeping a plant alive", "making friends in a new city", "time management",
    "taking better photos", "reading more books", "staying focused", "preparing for a job interview",
]
LIST_THINGS = [
    "fruits that are high in vitamin C", "famous scientists", "countries in South America",
    "programming languages", "board games for families", "healthy breakfast ideas",
    "ways to save energy at home", "classic novels", "planets in the solar system",
    "musical instruments", "hobbies you can do indoors", "animals that live in the Arctic",
    "benefits of exercise", "uses for baking soda", "tips for writing clearly", "ancient civilizations",
    "renewable energy sources", "common English idioms", "ways to reduce plastic waste",
    "questions to ask in a job interview", "things to pack for a camping trip", "types of clouds",
]
SYSTEMS = [
    "You are a helpful assistant.", "You are a concise assistant. Keep answers short.",
    "You are a friendly tutor who explains things step by step.", "You are an expert programmer.",
    "You are a patient math teacher.", "You are a creative writing assistant.",
]
FOLLOW_UPS = [
    "Can you make it shorter?", "Can you explain that more simply?", "Give me an example.",
    "Why is that?", "Can you summarize that in one sentence?", "What are the drawbacks?",
    "Can you give me more details?", "Thanks! Can you list the key points?",
    "How would you explain this to a child?", "What should I do next?", "Can you rewrite it more formally?",
    "Are you sure? Please double-check.", "What is a common mistake people make here?",
]
STYLES = ["", " Keep it short.", " Use simple words.", " Answer in a few sentences.",
          " Use bullet points.", " Explain step by step.", ""]
